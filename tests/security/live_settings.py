"""Settings of the live gunicorn the fuzz and browser suites start (tests/security/live.py):
the production-like base settings, with static files (admin, Swagger UI) served straight from
the apps by WhiteNoise, since the suite never runs collectstatic."""

from settings.base import *  # noqa: F403

WHITENOISE_USE_FINDERS = True
# The suites create their users in the test process, whose settings hash passwords with MD5 (fast).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
