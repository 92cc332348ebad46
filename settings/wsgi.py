"""WSGI entry point (gunicorn settings.wsgi). django-tenants keeps the tenant on the connection,
so Verdant serves WSGI only."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.production")

from django.core.wsgi import get_wsgi_application

from observability.tracing import configure_tracing

# Before the application loads its middleware (DjangoInstrumentor adds its own to
# settings.MIDDLEWARE), and in the process that serves: gunicorn imports this module in each worker
# after forking (never --preload: the exporter's thread does not survive the fork). Under
# opentelemetry-instrument it finds that provider installed and steps aside.
configure_tracing(component="web")

application = get_wsgi_application()
