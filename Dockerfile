# syntax=docker/dockerfile:1
# Verdant image: one image for web (gunicorn), Celery workers, beat and the migration Job.
#   docker build -t verdant:dev .
#   docker run -e SECRET_KEY=... -e DATABASE_URL=... -e REDIS_URL=... -e BASE_DOMAIN=... verdant:dev
# Stage 1 builds a virtualenv (compilers allowed); stage 2 copies it into a clean slim image
# with no compilers, no pip cache and a non-root user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Compilers only for the rare dependency without a wheel for this platform; never shipped.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY pyproject.toml requirements.lock ./
# Runtime dependencies only ([project].dependencies, not the dev extra), at the versions the
# lock file pins.
RUN python -m venv /opt/venv \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > runtime.txt \
    && /opt/venv/bin/pip install --no-cache-dir -r runtime.txt -c requirements.lock

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# postgresql-client: pg_dump / pg_restore for backup_tenant and restore_tenant (same major as
# the server: Debian bookworm ships 15). psycopg's binary wheel brings its own libpq.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 verdant \
    && useradd --system --uid 10001 --gid verdant --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin verdant \
    && mkdir -p /var/lib/verdant/media \
    && chown verdant:verdant /var/lib/verdant/media

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=settings.production \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/var/lib/verdant/media \
    PORT=8000

WORKDIR /app
# Code and static files belong to root: the app user can read them, never change them.
COPY . .
# Hashed, compressed static files for WhiteNoise, and bytecode compiled once, because the root
# filesystem is read-only at run time. The key exists for this one command only: production
# settings refuse to load without one, and collectstatic signs nothing.
RUN SECRET_KEY="collectstatic-only-$(python -c 'import secrets; print(secrets.token_hex(32))')" \
        python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q /app /opt/venv

USER 10001:10001
EXPOSE 8000

# The web process. Workers, beat and the migration Job run the same image with another command
# (see helm/verdant); `docker run IMAGE python manage.py ...` runs any management command.
CMD ["gunicorn", "-c", "settings/gunicorn.conf.py", "settings.wsgi:application"]
