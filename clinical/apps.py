from django.apps import AppConfig


class ClinicalConfig(AppConfig):
    name = "clinical"

    def ready(self) -> None:
        # Registers the clinical tables with the sync registry (sync.registry), once every
        # model is loaded, and the ``appointments`` subscription with realtime.registry.
        from clinical import realtime, sync  # noqa: F401
