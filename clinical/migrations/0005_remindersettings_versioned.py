# Reminder settings become a TenantModel (issue 19, item 4): a UUID key, ``version`` for ETags
# and If-Match, who created / last changed them, like every other mutable resource. The one row a
# schema may hold keeps ``singleton`` = 1 (now unique instead of the key) and gets a fresh id.

import apikit.ids
import django.db.models.deletion
import django.db.models.manager
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('clinical', '0004_patient_search_vector_without_phone'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelManagers(
            name='remindersettings',
            managers=[
                ('objects', django.db.models.manager.Manager()),
                ('all_objects', django.db.models.manager.Manager()),
            ],
        ),
        # The old key goes first (one primary key per table). Django's AlterField adds the
        # unique constraint below but never drops a primary key a field gives up.
        migrations.RunSQL(
            sql='ALTER TABLE "clinical_remindersettings" DROP CONSTRAINT "clinical_remindersettings_pkey"',
            # Going back, AlterField makes ``singleton`` the primary key again itself.
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name='remindersettings',
            name='singleton',
            field=models.PositiveSmallIntegerField(default=1, editable=False, unique=True),
        ),
        # At most one row per schema, so the one default value computed for existing rows is unique.
        migrations.AddField(
            model_name='remindersettings',
            name='id',
            field=models.UUIDField(default=apikit.ids.new_id, editable=False, primary_key=True, serialize=False),
        ),
        migrations.AddField(
            model_name='remindersettings',
            name='created_at',
            field=models.DateTimeField(auto_now_add=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='remindersettings',
            name='created_by',
            field=models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='remindersettings',
            name='updated_by',
            field=models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='remindersettings',
            name='version',
            field=models.PositiveIntegerField(default=1, editable=False),
        ),
        migrations.AddField(
            model_name='remindersettings',
            name='archived_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
