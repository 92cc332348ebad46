"""The Celery application. Tasks run in the schema of the tenant that enqueued them
(tenant-schemas-celery adds the schema to each message's headers)."""

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

app = CeleryApp("verdant")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
