from django.apps import AppConfig


class MigrateAppConfig(AppConfig):
    name = "tests.tenants.migrateapp"
    label = "migrateapp"
    default_auto_field = "django.db.models.BigAutoField"
