"""The test suite: real PostgreSQL and Redis, fast hashing, its own cache namespace per run."""

import os
import tempfile
import uuid
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "test-key-not-secret-" + "x" * 40)
os.environ["BASE_DOMAIN"] = "verdant.test"
os.environ.setdefault("CACHE_KEY_PREFIX", f"test-{uuid.uuid4().hex[:8]}")
# JSON log lines whatever the terminal (pytest -s), for this process and the servers it starts.
os.environ.setdefault("LOG_FORMAT", "json")

from .base import *  # noqa: F403
from .env import env_list

DEBUG = False
# Account emails stay in memory (pytest-django's mailoutbox) unless the environment names a
# backend (the Celery worker tests/accounts/test_email_smtp.py starts sends over real SMTP). Read,
# not set, so the production-settings processes some tests start do not inherit it.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["verdant.test", ".verdant.test"]

# A test-only app (tests/apikit/toy) exercises the API platform layer with its own models.
TENANT_APPS = [*TENANT_APPS, "tests.apikit.toy"]  # noqa: F405
INSTALLED_APPS = [*INSTALLED_APPS, "tests.apikit.toy"]  # noqa: F405
REST_FRAMEWORK["ALLOWED_VERSIONS"] = ["v0", "v1"]  # noqa: F405
API_VERSION_LIFECYCLE = {
    "v0": {
        "deprecated": "2026-01-01",
        "sunset": "2099-01-01",
        "link": "https://docs.verdant.example/v1",
    },
}

# Uploaded files of this run, away from a developer's .data/media.
MEDIA_ROOT = Path(tempfile.gettempdir()) / f"verdant-test-media-{os.getpid()}"

# A database per test run, so concurrent runs on one machine (CI, a developer, benchmarks) never
# destroy each other's test database.
DATABASES["default"]["TEST"] = {  # noqa: F405
    "NAME": os.environ.get("TEST_DATABASE_NAME", f"test_verdant_{os.getpid()}"),
}

# A fixed, public Fernet key for tenants' SMS secrets (tests that rotate set their own), unless the
# environment names keys. Set here, not in os.environ: processes this one starts (gunicorn with
# settings.production in the deploy tests) must not inherit it.
NOTIFY_SECRET_KEYS = env_list(
    "NOTIFY_SECRET_KEYS", default=["e_DcXLWysflAcaXyBQATGQuw-fKIZWmQ25JlueleOEg="]
)
