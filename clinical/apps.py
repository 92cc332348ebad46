from django.apps import AppConfig


class ClinicalConfig(AppConfig):
    name = "clinical"

    def ready(self) -> None:
        # Registers the clinical tables with the sync registry (sync.registry), once every
        # model is loaded.
        from clinical import sync  # noqa: F401
