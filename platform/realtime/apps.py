from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Real-time updates (WebSockets)"

    def ready(self) -> None:
        # The subscription kind platform code owns; domains register theirs (clinical/realtime.py).
        from realtime import changes  # noqa: F401
