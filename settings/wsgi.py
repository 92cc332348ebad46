"""WSGI entry point (gunicorn settings.wsgi). django-tenants keeps the tenant on the connection,
so Verdant serves WSGI only."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.production")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
