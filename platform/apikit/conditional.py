"""ETags and preconditions for versioned resources.

Detail responses carry ``ETag: W/"<version>"``, or ``W/"<version>;without=<field>+<field>"``
when the caller's role may not see some fields (a role projection: the view's
``hidden_fields()``), so two representations of one version that differ in fields never share a
tag; ``If-None-Match`` with it answers 304; writes may send ``If-Match`` (412
``precondition_failed`` when stale) or a ``version`` in the body (409 ``version_conflict`` when
stale, checked atomically by apikit.concurrency).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from apikit.concurrency import version_conflict
from apikit.errors import APIError
from apikit.models import TenantModel

PRECONDITION_FAILED_DETAIL = (
    "If-Match does not match the current version of this record; reload it and try again."
)


def etag_for(instance: TenantModel, *, hidden: Collection[str] = ()) -> str:
    """Weak: the version, plus the fields left out of this caller's representation (``hidden``,
    field names, never values). A 304 then never confirms a copy holding fields the caller may
    not see, nor one lacking fields it may."""
    if not hidden:
        return f'W/"{instance.version}"'
    return f'W/"{instance.version};without={"+".join(sorted(hidden))}"'


def _listed_tags(header: str) -> set[str]:
    return {tag.strip() for tag in header.split(",") if tag.strip()}


def _normalised(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def is_not_modified(
    request: Request, instance: TenantModel, *, hidden: Collection[str] = ()
) -> bool:
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    tags = {_normalised(tag) for tag in _listed_tags(header)}
    return "*" in tags or _normalised(etag_for(instance, hidden=hidden)) in tags


def expected_version(
    request: Request, instance: TenantModel, *, hidden: Collection[str] = ()
) -> int:
    """The version the client believes it is changing.

    ``If-Match`` must name the current version (else 412); a body ``version`` must equal it
    (else 409). Without either, the version just read is used, and the atomic UPDATE still
    refuses a change that raced with another write.
    """
    if_match = request.headers.get("If-Match")
    if if_match:
        tags = {_normalised(tag) for tag in _listed_tags(if_match)}
        if "*" not in tags and _normalised(etag_for(instance, hidden=hidden)) not in tags:
            raise APIError(
                status=412, code="precondition_failed", detail=PRECONDITION_FAILED_DETAIL
            )
    body_version = _body_version(request)
    if body_version is not None and body_version != instance.version:
        raise version_conflict(sent=body_version, current=instance.version)
    return instance.version


def _body_version(request: Request) -> int | None:
    data: Any = request.data
    if not isinstance(data, dict) or "version" not in data:
        return None
    value = data["version"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({"version": ["Must be an integer."]})
    return value
