from django.apps import AppConfig


class FarmsConfig(AppConfig):
    name = "farms"

    def ready(self) -> None:
        # Registers the farm tables with the sync registry (sync.registry), once every model is
        # loaded.
        from farms import sync  # noqa: F401
