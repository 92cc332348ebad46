from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Offline sync"
    # The synced tables are registered by the domain apps themselves (clinical/sync.py and
    # farms/sync.py, imported from their AppConfig.ready()): this app imports no domain module.
