from typing import Any

from django.db import transaction

from apikit.concurrency import archive, versioned_update
from tests.apikit.toy.models import Item, Site


@transaction.atomic
def item_create(*, site: Site, name: str, quantity: int, colour: str, actor: Any) -> Item:
    return Item.objects.create(
        site=site, name=name, quantity=quantity, colour=colour, created_by=actor, updated_by=actor
    )


def item_update(*, item: Item, expected_version: int, changes: dict[str, Any], actor: Any) -> Item:
    return versioned_update(
        instance=item, expected_version=expected_version, changes=changes, actor=actor
    )


def item_archive(*, item: Item, expected_version: int, actor: Any) -> Item:
    return archive(instance=item, expected_version=expected_version, actor=actor)
