"""Settings shared by every environment. Deployment-specific values come from the environment;
dev.py, test.py and production.py only change defaults and guard rails."""

import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_int, env_list, env_str, log_formatter
from .process import current_application_name

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY")

# Tenant hosts are <slug>.<BASE_DOMAIN>; BASE_DOMAIN itself is the public (platform operator) host.
BASE_DOMAIN = env_str("BASE_DOMAIN", "localhost").lower()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=[BASE_DOMAIN, f".{BASE_DOMAIN}"])

# --- applications -------------------------------------------------------------------------------
# django-tenants: SHARED_APPS migrate into public, TENANT_APPS into every tenant schema.
# contenttypes is public-only so content-type ids are identical in every schema; users, sessions,
# the admin log, guardian and the JWT blacklist live with each tenant's users (tenancy notes §1.6).
SHARED_APPS = [
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "accounts",
    "django.contrib.sessions",
    "accounts.admin_apps.GuardedAdminConfig",  # django.contrib.admin, login-guarded
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "observability",
    # The operators' host's audit trail (audit itself is a tenant app).
    "audit.public",
    # Which tenant owns an SMS number / messaging service (webhooks resolve it before any tenant
    # schema is entered; docs/sms-senders.md).
    "notify.public",
    # The tenant -> cell directory (docs/scaling.md, "Cells"); its tables stay empty unless cells
    # are on without a separate directory database.
    "tenants.cells",
    # Last, so Django's own admin templates win over django-tenants' copies (which assume every
    # request has a tenant object; on the public host Verdant sets request.tenant = None).
    "django_tenants",
]
TENANT_APPS = [
    "django.contrib.auth",
    "accounts",
    "django.contrib.sessions",
    "accounts.admin_apps.GuardedAdminConfig",  # django.contrib.admin, login-guarded
    "guardian",
    "rest_framework_simplejwt.token_blacklist",
    "apikit",
    "audit",
    "notify",
    "clinical",
    "farms",
    "sync",
    # WebSockets (issue 18): the change-log NOTIFY trigger lives in each tenant schema.
    "realtime",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# Schema every new tenant is cloned from; it is a non-routable tenant row so migrate_schemas keeps
# it current (see tenants/provisioning.py).
TENANT_TEMPLATE_SCHEMA = "tenant_template"
# Seconds a web process trusts its in-memory host -> tenant map before re-checking the shared
# routing generation in Redis (tenants/routing.py).
TENANT_ROUTING_RECHECK_SECONDS = env_int("TENANT_ROUTING_RECHECK_SECONDS", default=1)
# Issue `SET search_path` once per tenant switch instead of before every statement: halves the
# statements of a list request. Safe with django-tenants >= 4.0.1 (it forgets the cached path on
# ROLLBACK and ROLLBACK TO SAVEPOINT); tests/tenants/test_search_path.py guards the known traps.
# Never behind PgBouncer in transaction mode (docs/scaling.md).
TENANT_LIMIT_SET_CALLS = True
PUBLIC_SCHEMA_URLCONF = "settings.urls_public"
ROOT_URLCONF = "settings.urls"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
GET_EXECUTOR_FUNCTION = "tenants.migration_executor.get_executor"

MIDDLEWARE = [
    # /healthz and /readyz on any host, before everything else (no log line, no span).
    "apikit.health.HealthCheckMiddleware",
    "observability.middleware.RequestLogMiddleware",
    "apikit.middleware.RequestGuardMiddleware",
    # 421 for a host another cell serves; not in the chain at all while CELL_NAME is empty.
    "tenants.cells.middleware.CellRoutingMiddleware",
    "tenants.middleware.TenantRoutingMiddleware",
    # Tags the request's span (opentelemetry-instrumentation-django's, inserted just before this
    # entry) with tenant, user and request id, and cuts query strings from its URL attributes;
    # one boolean check when tracing is off (docs/observability.md).
    "observability.middleware.RequestSpanMiddleware",
    # Inside tenant routing, outside sessions, auth and DRF: it sees the request's user and has
    # the last word on caching headers.
    "apikit.middleware.PrivateResponsesMiddleware",
    "apikit.versioning.VersionLifecycleMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "settings.wsgi.application"
# The WebSocket process (uvicorn settings.asgi:application; platform/realtime).
ASGI_APPLICATION = "settings.asgi.application"
# How often an open WebSocket re-checks its user and subscriptions (docs/realtime.md).
REALTIME_RECHECK_SECONDS = env_int("REALTIME_RECHECK_SECONDS", default=60)
# Open WebSockets one user (of one tenant) may hold across every real-time process (leases in
# Redis, platform/realtime/leases.py); one more is closed 4429.
REALTIME_MAX_CONNECTIONS_PER_USER = env_int("REALTIME_MAX_CONNECTIONS_PER_USER", default=10)
if REALTIME_MAX_CONNECTIONS_PER_USER < 1:
    raise ImproperlyConfigured(
        f"REALTIME_MAX_CONNECTIONS_PER_USER={REALTIME_MAX_CONNECTIONS_PER_USER} would refuse every "
        "WebSocket: give 1 or more."
    )
# Shutdown (realtime.drain): the preStop hook's drain closes the open WebSockets with 1001 spread
# evenly over this many seconds (fits the chart's terminationGracePeriodSeconds, helm/verdant).
REALTIME_DRAIN_SECONDS = env_int("REALTIME_DRAIN_SECONDS", default=20)
if REALTIME_DRAIN_SECONDS < 0:
    raise ImproperlyConfigured(
        f"REALTIME_DRAIN_SECONDS={REALTIME_DRAIN_SECONDS} is negative: give 0 (close at once) or more."
    )

# --- data stores ----------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/verdant")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        # django-tenants' backend plus a bound on the distinct schemas a connection serves
        # (issue 20 item 2); it overrides public methods only (issue 22 item 3).
        engine="tenants.postgresql_backend",
        conn_max_age=env_int("DB_CONN_MAX_AGE", default=60),
        conn_health_checks=True,
    ),
}
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
    "DB_CONNECT_TIMEOUT", default=5
)
# verdant-web / -worker / -beat / -migrate ... in pg_stat_activity (settings/process.py).
DATABASES["default"]["OPTIONS"]["application_name"] = current_application_name()
# Close a connection once it has served more distinct schemas than this (0: never). A backend
# keeps ~0.17 MiB of catalog cache per tenant schema it has touched; 250 keeps one under 64 MiB
# of private memory (docs/scaling.md, "Backend memory"). Enforced by the backend above and, for
# loops over every tenant in one task, by tenants.fanout.schema_walk.
DB_MAX_SCHEMAS_PER_CONNECTION = env_int("DB_MAX_SCHEMAS_PER_CONNECTION", default=250)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cells (docs/scaling.md, "Cells"): independent stacks, each serving a slice of the tenants, behind
# one tenant -> cell directory. CELL_NAME empty = one stack, today's behaviour. The directory is a
# separate database shared by every cell (CELLS_DIRECTORY_DATABASE_URL); unset, it is this
# database's public schema (one cell, or tests).
CELL_NAME = env_str("CELL_NAME", "")
CELL_URL = env_str("CELL_URL", "")
CELLS_DIRECTORY_DATABASE_URL = env_str("CELLS_DIRECTORY_DATABASE_URL", "")
# How long a cell trusts a directory answer for a host it does not serve (tenants/cells/lookup.py).
CELLS_DIRECTORY_CACHE_SECONDS = env_int("CELLS_DIRECTORY_CACHE_SECONDS", default=10)
if CELLS_DIRECTORY_DATABASE_URL:
    DATABASES["cells_directory"] = dj_database_url.parse(
        CELLS_DIRECTORY_DATABASE_URL,
        engine="django.db.backends.postgresql",
        conn_max_age=env_int("DB_CONN_MAX_AGE", default=60),
        conn_health_checks=True,
    )
    DATABASES["cells_directory"]["OPTIONS"] = dict(DATABASES["default"]["OPTIONS"])
    DATABASE_ROUTERS = ["tenants.cells.routers.DirectoryRouter", *DATABASE_ROUTERS]

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Every key carries the active schema, so tenant A can never read tenant B's entries.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "verdant"),
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}

# --- identity ---------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "accounts.backends.RolePermissionBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# Argon2id with OWASP's parameters first (platform/accounts/hashers.py says why); hashes made by
# the other hashers keep working and are re-hashed at the user's next login.
PASSWORD_HASHERS = [
    "accounts.hashers.Argon2idHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Host-only cookies: a session or CSRF cookie set on one tenant host is never sent to another
# (production also gives them __Host- names, which no other host can set).
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
# No origin but the request's own host is trusted by default: Django's same-origin check accepts
# a form posted from the host it was served on. Never a wildcard (production refuses one): it
# would make every tenant host a trusted origin for every other one.
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", default=[])
# Guardian's anonymous user is not used: anonymous requests never get object permissions.
ANONYMOUS_USER_NAME = None

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": env_str("JWT_SIGNING_KEY", SECRET_KEY),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "AUTH_HEADER_TYPES": ("Bearer",),
}

# --- API ----------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TenantJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The one JSON encoder (apikit/json.py): every endpoint's bytes, formats in one place.
    "DEFAULT_RENDERER_CLASSES": ["apikit.json.JSONRenderer"],
    # DRF's, with an unknown ?format= answered 406 rather than 404 (apikit/media.py).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "apikit.media.ContentNegotiation",
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "apikit.errors.envelope_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "apikit.schema.EnvelopeAutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["apikit.throttling.TenantRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "apikit.pagination.CursorPagination",
    "DEFAULT_FILTER_BACKENDS": [
        "apikit.filters.FilterSetBackend",
        "apikit.filters.StrictOrderingFilter",
        "apikit.filters.ExplicitSearchFilter",
    ],
    "DEFAULT_VERSIONING_CLASS": "apikit.versioning.PathVersioning",
    "ALLOWED_VERSIONS": ["v1"],
    "DEFAULT_VERSION": "v1",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Verdant API",
    "DESCRIPTION": (
        "Multi-tenant API for clinic networks and agricultural operators. Call it on your "
        "organisation's host (<slug>.<base domain>). Every error answers "
        '{"error": {"status", "code", "detail", "fields"?}}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The REST API under /api/ only (the FHIR base is described by its CapabilityStatement).
    "PREPROCESSING_HOOKS": ["apikit.schema.rest_api_only"],
    # drf-spectacular's enum hook, then nullable references made valid under strict OAS 3.0.3.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apikit.schema.strict_nullable_refs",
        "apikit.schema.anonymous_security",
    ],
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    # Several resources have a "status"; name each choice set after its model.
    "ENUM_NAME_OVERRIDES": {
        "AppointmentStatusEnum": "clinical.models.AppointmentStatus",
        "PrescriptionStatusEnum": "clinical.models.PrescriptionStatus",
        "PlantingStatusEnum": "farms.models.Planting.Status",
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
# Default ceiling on request bodies; views raise it with a ``max_body_bytes`` class attribute.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", default=1024 * 1024)
# Deprecated API versions: {"v0": {"deprecated": "YYYY-MM-DD", "sunset": "YYYY-MM-DD", "link": url}}.
API_VERSION_LIFECYCLE: dict[str, dict[str, str]] = {}
# ?paginate=page (issue 19, item 7): rows counted exactly per list request (a bounded
# ``count(*)`` over ``LIMIT n+1``); above it the count is reported as inexact and pages beyond it
# are refused in favour of cursors.
API_PAGE_COUNT_LIMIT = env_int("API_PAGE_COUNT_LIMIT", default=10_000)
# How many reverse proxies (the ingress) append to X-Forwarded-For in front of the app.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", default=0)
# Anonymous requests per IP per minute, per tenant host (throttles for authenticated users and
# tenant-wide ceilings come from the tenant's Plan).
ANON_REQUESTS_PER_MINUTE = env_int("ANON_REQUESTS_PER_MINUTE", default=120)
# All anonymous requests of one tenant per minute, as a share of the plan's ceiling; anonymous
# traffic has this bucket instead of the ceiling, which stays the signed-in users'.
ANON_TENANT_SHARE_PERCENT = env_int("ANON_TENANT_SHARE_PERCENT", default=20)
# Login attempts per (tenant, client IP, email) per 15 minutes (API and admin; apikit.login_guard).
LOGIN_ATTEMPTS_PER_15_MINUTES = env_int("LOGIN_ATTEMPTS_PER_15_MINUTES", default=10)
# Failed logins per email before each further failure delays the next attempt (1 s, 2 s, 4 s ...
# up to the cap): a growing delay, never a lock.
LOGIN_FAILURES_BEFORE_DELAY = env_int("LOGIN_FAILURES_BEFORE_DELAY", default=10)
LOGIN_FAILURE_DELAY_CAP_SECONDS = env_int("LOGIN_FAILURE_DELAY_CAP_SECONDS", default=900)
# Lifetime of the device token a successful login hands out (its holder is counted apart).
LOGIN_DEVICE_TOKEN_DAYS = env_int("LOGIN_DEVICE_TOKEN_DAYS", default=90)

# --- background work -------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
# Two queues: "default" for upkeep, "sms" for reminder delivery (its own workers, so a backlog of
# one never delays the other). The names come from the environment so test runs sharing one
# Redis use queues of their own.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_DEFAULT_QUEUE", "default")
CELERY_SMS_QUEUE = env_str("CELERY_SMS_QUEUE", "sms")
CELERY_TASK_ROUTES = {"clinical.reminders_dispatch": {"queue": CELERY_SMS_QUEUE}}
# At-least-once: acknowledged after the task ran, redelivered if the worker dies; every task is
# idempotent (reminders claim their rows before sending).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_WORKER_MAX_TASKS_PER_CHILD = env_int("CELERY_WORKER_MAX_TASKS_PER_CHILD", default=1000)
# Redelivery of unacknowledged tasks: longer than the hard time limit and any retry countdown
# (perf notes 2.3). Recovery after a SIGKILL is the beat sweep's job, not the broker's.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
REMINDER_SWEEP_SECONDS = env_int("REMINDER_SWEEP_SECONDS", default=30)
# --- email (accounts.emails; docs/accounts.md) ------------------------------------------------------
# Account emails (invitations, verification, password reset) are sent by a Celery worker after
# commit through Django's email framework. Production sends over SMTP with the EMAIL_* variables;
# settings/dev.py prints messages to the console, settings/test.py keeps them in memory.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", default=587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=True)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"Verdant <no-reply@{BASE_DOMAIN}>")
SERVER_EMAIL = env_str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
# The queue account emails go to (its own name lets a test run use a queue nobody else reads).
CELERY_EMAIL_QUEUE = env_str("CELERY_EMAIL_QUEUE", CELERY_TASK_DEFAULT_QUEUE)
# Links in account emails: <scheme>://<tenant's primary domain>[:<port>]/...
ACCOUNT_LINK_SCHEME = env_str("ACCOUNT_LINK_SCHEME", "https")
ACCOUNT_LINK_PORT = env_str("ACCOUNT_LINK_PORT", "")
# Verification and password-reset links (Django's token generator) expire after this many
# seconds; invitations after ACCOUNT_INVITATION_DAYS.
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT_SECONDS", default=24 * 3600)
ACCOUNT_INVITATION_DAYS = env_int("ACCOUNT_INVITATION_DAYS", default=7)
# Password reset requests per (tenant, client IP, email) per 15 minutes.
PASSWORD_RESET_REQUESTS_PER_15_MINUTES = env_int(
    "PASSWORD_RESET_REQUESTS_PER_15_MINUTES", default=5
)
# --- offline sync (docs/sync.md) ---------------------------------------------------------------
# Days tombstones stay in each tenant's change log (SyncState.retention_days overrides per
# tenant); a cursor older than the compacted history answers 410 cursor_expired.
SYNC_CHANGE_LOG_RETENTION_DAYS = env_int("SYNC_CHANGE_LOG_RETENTION_DAYS", default=90)
SYNC_COMPACT_EVERY_SECONDS = env_int("SYNC_COMPACT_EVERY_SECONDS", default=6 * 3600)
# Key for the pull cursors' HMAC (derived per tenant); defaults to SECRET_KEY.
SYNC_CURSOR_KEY = env_str("SYNC_CURSOR_KEY", "")
SYNC_PULL_DEFAULT_LIMIT = env_int("SYNC_PULL_DEFAULT_LIMIT", default=500)
# Sync push: how long the author may still change or delete an observation / harvest.
SYNC_APPEND_ONLY_GRACE_SECONDS = env_int("SYNC_APPEND_ONLY_GRACE_SECONDS", default=900)
CELERY_BEAT_SCHEDULE = {
    "purge-idempotency-records": {
        "task": "apikit.idempotency_records_purge_all",
        "schedule": 3600.0,
    },
    "reminders-sweep": {
        "task": "clinical.reminders_sweep",
        "schedule": float(REMINDER_SWEEP_SECONDS),
        "options": {"expires": float(REMINDER_SWEEP_SECONDS)},
    },
    "sync-change-log-compact": {
        "task": "sync.change_log_compact_all",
        "schedule": float(SYNC_COMPACT_EVERY_SECONDS),
    },
    "fhir-bulk-exports-purge": {
        "task": "clinical.bulk_exports_purge",
        "schedule": 600.0,
    },
}

# --- FHIR Bulk Data export (docs/fhir.md, "Bulk Data export") ----------------------------------
# Retry-After of a running export's status (seconds); a poll sooner than half of it is a 429.
FHIR_BULK_RETRY_AFTER_SECONDS = env_int("FHIR_BULK_RETRY_AFTER_SECONDS", default=1)
# How long a finished export's files stay downloadable (the manifest's Expires).
FHIR_BULK_EXPIRES_SECONDS = env_int("FHIR_BULK_EXPIRES_SECONDS", default=24 * 3600)
# The run's time limit; a live export older than this had its worker die and is failed by beat.
FHIR_BULK_TIME_LIMIT_SECONDS = env_int("FHIR_BULK_TIME_LIMIT_SECONDS", default=3600)
# The queue of export runs (empty: CELERY_TASK_DEFAULT_QUEUE); read when an export is queued.
FHIR_BULK_QUEUE = env_str("FHIR_BULK_QUEUE", "")

# --- SMS reminders (docs/reminders.md) ---------------------------------------------------------
# "console" (prints; NOTIFY_CONSOLE_OUTPUT=null counts only) or "twilio" (Messages API).
NOTIFY_SMS_BACKEND = env_str("NOTIFY_SMS_BACKEND", "console")
NOTIFY_CONSOLE_OUTPUT = env_str("NOTIFY_CONSOLE_OUTPUT", "stdout")
TWILIO_API_BASE = env_str("TWILIO_API_BASE", "https://api.twilio.com")
TWILIO_ACCOUNT_SID = env_str("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = env_str("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = env_str("TWILIO_FROM_NUMBER", "")
TWILIO_MESSAGING_SERVICE_SID = env_str("TWILIO_MESSAGING_SERVICE_SID", "")
TWILIO_READ_TIMEOUT_SECONDS = env_int("TWILIO_READ_TIMEOUT_SECONDS", default=10)
# Ask the provider for signed delivery receipts at https://<tenant host>/api/v1/notify/...
NOTIFY_STATUS_CALLBACKS = env_bool("NOTIFY_STATUS_CALLBACKS", default=False)
NOTIFY_CALLBACK_SCHEME = env_str("NOTIFY_CALLBACK_SCHEME", "https")
NOTIFY_RECEIPT_HANDLER = "clinical.reminders.reminder_receipt_apply"
# Fernet keys (comma-separated, newest first) encrypting tenants' own SMS provider secrets with
# MultiFernet. Their own setting, never derived from SECRET_KEY: rotating one must not touch the
# other. Empty: no tenant may store an auth token (docs/sms-senders.md, "Keys and rotation").
NOTIFY_SECRET_KEYS = env_list("NOTIFY_SECRET_KEYS", default=[])
REMINDER_BATCH_SIZE = env_int("REMINDER_BATCH_SIZE", default=200)
# Seconds one dispatch task keeps claiming batches before handing over to a fresh task.
REMINDER_TIME_BUDGET = env_int("REMINDER_TIME_BUDGET", default=120)
REMINDER_MAX_ATTEMPTS = env_int("REMINDER_MAX_ATTEMPTS", default=5)
REMINDER_RETRY_BASE_SECONDS = env_int("REMINDER_RETRY_BASE_SECONDS", default=30)
REMINDER_RETRY_MAX_SECONDS = env_int("REMINDER_RETRY_MAX_SECONDS", default=3600)
# A "sending" row older than this had its worker die (must exceed CELERY_TASK_TIME_LIMIT).
REMINDER_STUCK_AFTER_SECONDS = env_int("REMINDER_STUCK_AFTER_SECONDS", default=600)
# An "unknown" (ambiguous answer) row is checked with the provider after this long.
REMINDER_RECONCILE_AFTER_SECONDS = env_int("REMINDER_RECONCILE_AFTER_SECONDS", default=120)

# --- i18n, static --------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / ".data" / "static")))
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / ".data" / "media")))
# Static files (admin, Swagger UI) are served by WhiteNoise; in development straight from the apps.
WHITENOISE_USE_FINDERS = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- observability (issue 8: logs and tracing; docs/observability.md) -------------------------------
# Tracing is configured from the standard OTEL_* variables by observability.tracing (the official
# SDK, OTLP exporter and instrumentations), called from settings/wsgi.py and Celery's
# worker_process_init; it is off unless an OTLP endpoint is set, and steps aside when the process
# runs under `opentelemetry-instrument`.
# These name the service in every span (OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME override).
DEPLOYMENT_ENVIRONMENT = env_str("DEPLOYMENT_ENVIRONMENT", "development")
SERVICE_VERSION = env_str("SERVICE_VERSION", "")
# LOG_FORMAT: "json" (one object per line, for collectors) or "text" (a readable line; "plain" is
# the same). Unset: text when stderr (where the lines go) is a terminal, as under `make run`, else
# json; settings/production.py makes json the default whatever stderr is.
LOG_FORMATTER = log_formatter(env_str("LOG_FORMAT", ""), terminal=sys.stderr.isatty())
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # Order matters: context first, then exceptions onto the span, then redaction.
        "context": {"()": "observability.logs.LogContextFilter"},
        "span_errors": {"()": "observability.logs.SpanErrorFilter"},
        "redact": {"()": "observability.logs.RedactingFilter"},
    },
    "formatters": {
        "json": {"()": "observability.logs.VerdantJsonFormatter"},
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(tenant)s %(request_id)s "
            "%(trace_id)s] %(message)s"
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMATTER,
            "filters": ["context", "span_errors", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
# Celery keeps the logging configured above instead of installing its own plain-text handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# --- end observability --------------------------------------------------------------------------------
