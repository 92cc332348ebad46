"""The baseline for the request-overhead benchmark: a plain Django project with the same kind of
view and none of Verdant's platform (no tenancy, no auth, no throttles, no audit)."""

SECRET_KEY = "bench-plain-project-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "tests.benchmarks.plain_urls"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
