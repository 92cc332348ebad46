"""Production: everything from the environment; refuses to start insecurely."""

import os

from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_int

if env_bool("DEBUG", default=False):
    raise ImproperlyConfigured("DEBUG must be off in production: unset DEBUG or set DEBUG=false.")
if not os.environ.get("SECRET_KEY"):
    raise ImproperlyConfigured("SECRET_KEY is required in production: set a long random value.")
if len(os.environ["SECRET_KEY"]) < 50 or os.environ["SECRET_KEY"].startswith("django-insecure"):
    raise ImproperlyConfigured("SECRET_KEY is too weak: use at least 50 random characters.")

from .base import *  # noqa: F403

DEBUG = False
# TLS ends at the ingress, which sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
# Health probes come over plain HTTP from the kubelet.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Hashed, compressed static files, built by `collectstatic` in the image.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
