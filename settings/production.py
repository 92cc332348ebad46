"""Production: everything from the environment; refuses to start insecurely.

Read here or in base.py: DATABASE_URL, REDIS_URL, SECRET_KEY (+ SECRET_KEY_FALLBACKS while
rotating), JWT_SIGNING_KEY, BASE_DOMAIN, ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS, TRUSTED_PROXY_COUNT,
SECURE_SSL_REDIRECT, SECURE_HSTS_SECONDS, STATIC_ROOT, MEDIA_ROOT; OTEL_* are read by the
OpenTelemetry SDK itself (observability.tracing). Email: EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER,
EMAIL_HOST_PASSWORD, EMAIL_USE_TLS / EMAIL_USE_SSL, EMAIL_TIMEOUT, DEFAULT_FROM_EMAIL (base.py;
SMTP is the default backend; docs/accounts.md).
"""

import os

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_int, env_list

MIN_KEY_LENGTH = 50
ERR_DEBUG = "DEBUG must be off in production: unset DEBUG or set DEBUG=false."
# Messages, not passwords:
ERR_NO_SECRET = "SECRET_KEY is required in production: set a long random value."  # noqa: S105
ERR_WEAK_SECRET = "SECRET_KEY is too weak: use at least 50 random characters."  # noqa: S105
ERR_WEAK_FALLBACK = "SECRET_KEY_FALLBACKS holds a weak key: every key needs 50+ random characters."
ERR_WEAK_JWT = "JWT_SIGNING_KEY is too weak: use at least 50 random characters."
ERR_ANY_HOST = "ALLOWED_HOSTS must not contain '*': list the base domain and '.<base domain>'."
ERR_HTTP_ORIGIN = "CSRF_TRUSTED_ORIGINS must be https:// origins in production; got {origin!r}."
ERR_WILDCARD_ORIGIN = (
    "CSRF_TRUSTED_ORIGINS must not contain '*' (got {origin!r}): a wildcard makes every tenant "
    "host trusted by every other one. Leave it empty: each host's own forms pass Django's "
    "same-origin check (docs/operations.md, 'Hosts, TLS and CSRF')."
)
ERR_PROXY_COUNT = "TRUSTED_PROXY_COUNT must be 0 or more."
ERR_NOTIFY_KEY = (
    "NOTIFY_SECRET_KEYS holds a value that is not a Fernet key (key {index}): each key is 32 "
    "url-safe base64-encoded bytes, e.g. from `python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'` (docs/sms-senders.md)."
)
ERR_NOTIFY_PUBLIC_KEY = (
    "NOTIFY_SECRET_KEYS holds the development or test key (key {index}), which is public: "
    "generate a new one (docs/sms-senders.md)."
)
# settings/dev.py and settings/test.py: never valid here.
_PUBLIC_NOTIFY_KEYS = frozenset(
    {
        "tWcqHJGGTud2tZU3KX0CwDSVXvMOoK80rQbC8QTMs-g=",
        "e_DcXLWysflAcaXyBQATGQuw-fKIZWmQ25JlueleOEg=",
    }
)


def _weak(key: str) -> bool:
    return len(key) < MIN_KEY_LENGTH or key.startswith("django-insecure") or len(set(key)) < 5


if env_bool("DEBUG", default=False):
    raise ImproperlyConfigured(ERR_DEBUG)
if not os.environ.get("SECRET_KEY"):
    raise ImproperlyConfigured(ERR_NO_SECRET)
if _weak(os.environ["SECRET_KEY"]):
    raise ImproperlyConfigured(ERR_WEAK_SECRET)
if any(_weak(key) for key in env_list("SECRET_KEY_FALLBACKS", default=[])):
    raise ImproperlyConfigured(ERR_WEAK_FALLBACK)
if os.environ.get("JWT_SIGNING_KEY") and _weak(os.environ["JWT_SIGNING_KEY"]):
    raise ImproperlyConfigured(ERR_WEAK_JWT)
# Empty is allowed (every tenant on the deployment's sender); notify refuses to store or read a
# tenant's auth token without keys, and `check --database default` reports stored ones.
for _index, _key in enumerate(env_list("NOTIFY_SECRET_KEYS", default=[]), start=1):
    if _key in _PUBLIC_NOTIFY_KEYS:
        raise ImproperlyConfigured(ERR_NOTIFY_PUBLIC_KEY.format(index=_index))
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(ERR_NOTIFY_KEY.format(index=_index)) from None

# JSON log lines for the collector even when a terminal is attached (LOG_FORMAT=text overrides).
os.environ.setdefault("LOG_FORMAT", "json")

from .base import *  # noqa: E402, F403
from .base import ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS, TRUSTED_PROXY_COUNT  # noqa: E402

if "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured(ERR_ANY_HOST)
for _origin in CSRF_TRUSTED_ORIGINS:
    if "*" in _origin:
        raise ImproperlyConfigured(ERR_WILDCARD_ORIGIN.format(origin=_origin))
    if not _origin.startswith("https://"):
        raise ImproperlyConfigured(ERR_HTTP_ORIGIN.format(origin=_origin))
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(ERR_PROXY_COUNT)

DEBUG = False
# Rotating SECRET_KEY: put the old key here until every session and signed value made with it
# has expired (docs/operations.md, "Rotating keys").
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", default=[])
# TLS ends at the ingress, which sets X-Forwarded-Proto and passes the Host header unchanged.
# Both are what lets Django's CSRF check accept a form posted from its own host: the request's
# origin is https://<Host> only if the request is known to be https. No other origin is trusted.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
# Health probes come over plain HTTP from the kubelet.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", default=31536000)
# Every tenant is a subdomain of BASE_DOMAIN, so HSTS must cover the subdomains too.
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# __Host- cookies (Secure, Path=/, no Domain): a browser refuses them from any other host, so a
# sibling tenant host cannot plant a session or CSRF cookie here (and the unprefixed names a
# sibling could set for the whole base domain are never read).
SESSION_COOKIE_NAME = "__Host-sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken"
SESSION_COOKIE_PATH = "/"
CSRF_COOKIE_PATH = "/"
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# Hashed, compressed static files, built by `collectstatic` in the image.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
