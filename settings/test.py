"""The test suite: real PostgreSQL and Redis, fast hashing, its own cache namespace per run."""

import os
import uuid

os.environ.setdefault("SECRET_KEY", "test-key-not-secret-" + "x" * 40)
os.environ["BASE_DOMAIN"] = "verdant.test"
os.environ.setdefault("CACHE_KEY_PREFIX", f"test-{uuid.uuid4().hex[:8]}")

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["verdant.test", ".verdant.test"]
