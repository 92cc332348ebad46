"""ASGI entry point for WebSockets only (issue 18): uvicorn serves it as its own process,

    uvicorn settings.asgi:application --ws-per-message-deflate false --lifespan off

``/ws/v1/`` is the real-time endpoint (platform/realtime, docs/realtime.md); plain HTTP answers
only the kubelet's /healthz and /readyz. The REST API stays on gunicorn (settings/wsgi.py):
django-tenants keeps the tenant on the database connection, which async code shares.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.production")

import django

django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from realtime.consumer import NotFoundConsumer, RealtimeConsumer  # noqa: E402
from realtime.probes import probe_app  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": probe_app,
        "websocket": URLRouter(
            [
                path("ws/v1/", RealtimeConsumer.as_asgi()),
                re_path(r"", NotFoundConsumer.as_asgi()),
            ]
        ),
    }
)
