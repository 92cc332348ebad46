from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Offline sync"

    def ready(self) -> None:
        # The per-domain table registrations (sync.registry); imported here, after every model
        # is loaded, so neither domain app imports sync at model-loading time.
        import clinical.sync  # noqa: F401
        import farms.sync  # noqa: F401
