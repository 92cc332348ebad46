"""Patient.phone_is_mobile: the column, then existing rows backfilled in batches.

Non-atomic so that each batch commits on its own: a big tenant's backfill holds row locks for
one batch at a time, not for the whole table, and an interrupted run resumes where it stopped
(only rows with a phone and no verdict yet are read).

The sync change log's triggers fire for these UPDATEs like for any write (docs/sync.md), so
devices pull each patient with a phone once more after the upgrade — the same record on the wire
(the verdict is not a synced field). Switching the triggers off would also hide the application's
own writes made while the backfill runs, so the one extra pull is the price.
"""

from typing import Any

import phonenumbers
from django.db import migrations, models, transaction

BATCH = 2000


def _is_mobile(phone: str) -> bool:
    # The rule of clinical.rules.phone_is_mobile, copied: a migration must not change when the
    # application code does.
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE)


def backfill(apps: Any, schema_editor: Any) -> None:
    patient = apps.get_model("clinical", "Patient")
    # A historical model's manager is a plain Manager: archived rows included.
    rows = patient.objects.using(schema_editor.connection.alias)
    last = None
    while True:
        batch = rows.filter(phone_is_mobile__isnull=True).exclude(phone="").order_by("pk")
        if last is not None:
            batch = batch.filter(pk__gt=last)
        found = list(batch.values_list("pk", "phone")[:BATCH])
        if not found:
            return
        mobile = [pk for pk, phone in found if _is_mobile(phone)]
        chosen = set(mobile)
        other = [pk for pk, _phone in found if pk not in chosen]
        with transaction.atomic(using=schema_editor.connection.alias):
            rows.filter(pk__in=mobile).update(phone_is_mobile=True)
            rows.filter(pk__in=other).update(phone_is_mobile=False)
        last = found[-1][0]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("clinical", "0006_bulkexport")]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="phone_is_mobile",
            field=models.BooleanField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
