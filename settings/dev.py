"""Local development: `make run`. Debug on, an insecure key unless one is given."""

import os

os.environ.setdefault("SECRET_KEY", "dev-insecure-key-for-local-use-only-never-in-production")
os.environ.setdefault("DEBUG", "true")
# Account emails are printed by the worker (`make run`), with links to http://<tenant host>:PORT.
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
os.environ.setdefault("ACCOUNT_LINK_SCHEME", "http")
os.environ.setdefault("ACCOUNT_LINK_PORT", os.environ.get("PORT", "8000"))

from .base import *  # noqa: F403
from .base import REST_FRAMEWORK
from .env import env_list

# The browsable API after base's JSON renderer (apikit.json), which stays the default.
REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [
    *REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"],
    "rest_framework.renderers.BrowsableAPIRenderer",
]
# No CSRF_TRUSTED_ORIGINS: each host's own forms pass the same-origin check (over http here).

# A fixed, public Fernet key for tenants' SMS secrets (a developer's machine only), unless the
# environment names keys. Set here, not in os.environ: processes this one starts (gunicorn with
# settings.production in the deploy tests) must not inherit it.
NOTIFY_SECRET_KEYS = env_list(
    "NOTIFY_SECRET_KEYS", default=["tWcqHJGGTud2tZU3KX0CwDSVXvMOoK80rQbC8QTMs-g="]
)
