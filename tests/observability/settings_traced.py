"""Settings for the web and worker processes the tracing tests start: the test settings, the
test-only endpoints of tests/observability/urls.py, and a queue of the test's own."""

import os

from settings.test import *  # noqa: F403

ROOT_URLCONF = "tests.observability.urls"
# Another worker on the same Redis (a developer's `make run`) must not take the test's task.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("VERDANT_TEST_QUEUE", "default")
