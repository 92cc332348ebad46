"""Primary keys for tenant data: UUIDv7 (time-ordered, so inserts stay index-friendly, and
revealing nothing about row counts). Field apps may supply their own UUIDs."""

import uuid

import uuid_utils


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


def parse_uuid(value: object) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is not one (ids from URLs and bodies)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
