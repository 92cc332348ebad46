# Issue 21, item 3: the phone leaves the generated full-text column (only some roles may see it;
# the search matches phones exactly, for those roles only). PostgreSQL before 17 cannot change a
# generated column's expression, and Django refuses to alter one: the index and the column are
# dropped and added again (the table is rewritten once; no trigger fires).

import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('clinical', '0003_patient_visit_count_db_default'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='patient',
            name='clinical_patient_search_gin',
        ),
        migrations.RemoveField(
            model_name='patient',
            name='search_vector',
        ),
        migrations.AddField(
            model_name='patient',
            name='search_vector',
            field=models.GeneratedField(db_persist=True, expression=django.contrib.postgres.search.SearchVector('mrn', 'given_name', 'family_name', config='simple'), output_field=django.contrib.postgres.search.SearchVectorField()),
        ),
        migrations.AddIndex(
            model_name='patient',
            index=django.contrib.postgres.indexes.GinIndex(fields=['search_vector'], name='clinical_patient_search_gin'),
        ),
    ]
