"""``manage.py migrate_schemas`` as the Helm migration Job runs it (the project's executor,
``--executor=subprocess --parallel N``), in real processes against a database of its own (issue 20,
item 4): killed part-way it resumes with only the schemas left; ``--continue-on-error`` carries on
past a failing schema and lists it; progress is in the log and in ``tenants_migrationrun``.

The database holds six tenants and the template, migrated with a test-only tenant app
(tests/tenants/migrateapp, stages chosen by MIGRATEAPP_STAGE, see migrate_settings.py). ``alpha``
and ``beta`` hold colliding notes (the same ids); ``beta``'s two notes share a title, so stage 3's
unique constraint fails there and only there. The tests run in file order: each starts from the
state the previous one left (a resumed stage 2, then stage 3 stopped, then stage 3 continued).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.conf import settings

from tests.benchmarks.common import ROOT, drop_database, recreate_database

# Real processes on a shared machine: a loaded CI box needs more than the suite's 300 s default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SLUGS = ("alpha", "beta", "delta", "epsilon", "gamma", "zeta")
SCHEMAS = 7  # the six tenants and the template
SETTINGS = "tests.tenants.migrate_settings"
JOB_COMMAND = (
    "migrate_schemas",
    "--tenant",
    "--executor=subprocess",
    "--noinput",
)
SEED = """
from django_tenants.utils import schema_context
from tenants.services import tenant_provision
from tests.tenants.migrateapp.models import Note

for slug in {slugs!r}:
    tenant = tenant_provision(
        slug=slug, name=slug, kind="mixed", admin_email="admin@example.com",
        admin_password="Migrate-Password-1",
    ).tenant
    with schema_context(tenant.schema_name):
        # The same ids in every tenant; beta's titles collide with each other.
        titles = ("same", "same") if slug == "beta" else ("first", "second")
        for pk, title in enumerate(titles, start=1):
            Note.objects.create(id=pk, title=title)
"""


@dataclass(frozen=True)
class Stack:
    url: str

    def env(self, *, stage: int, sleep: float = 0) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.url,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "MIGRATEAPP_STAGE": str(stage),
            "MIGRATEAPP_SLEEP": str(sleep),
            "LOG_FORMAT": "plain",
        }

    def manage(self, *args: str, stage: int, sleep: float = 0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(stage=stage, sleep=sleep),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def schemas(self) -> list[str]:
        rows = self.query("SELECT schema_name FROM tenants_tenant ORDER BY slug")
        return [str(schema) for (schema,) in rows]

    def with_migration(self, name: str) -> set[str]:
        found = set()
        for schema in self.schemas():
            rows = self.query(
                f'SELECT 1 FROM "{schema}".django_migrations '  # schema names: our own
                "WHERE app = 'migrateapp' AND name = %s",
                name,
            )
            if rows:
                found.add(schema)
        return found

    def runs(self) -> list[dict[str, object]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(
                "SELECT id, status, executor, tenant_schemas, already_current, to_migrate, done, failed "
                "FROM tenants_migrationrun ORDER BY id"
            )
            names = [column.name for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def failures(self, run_id: object) -> list[str]:
        rows = self.query(
            "SELECT schema_name FROM tenants_migrationfailure WHERE run_id = %s "
            "ORDER BY schema_name",
            run_id,
        )
        return [str(schema) for (schema,) in rows]


def _database_url() -> str:
    database = settings.DATABASES["default"]
    server = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/postgres"
    parts = urlsplit(server)
    return urlunsplit(parts._replace(path=f"/test_verdant_migrate_runs_{os.getpid()}"))


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    url = _database_url()
    recreate_database(url)
    built = Stack(url=url)
    try:
        for args in (
            ("migrate_schemas", "--shared", "--noinput", "-v0"),
            ("ensure_template_schema", "-v0"),
            ("shell", "-c", SEED.format(slugs=SLUGS)),
        ):
            result = built.manage(*args, stage=1)
            assert result.returncode == 0, result.stdout + result.stderr
        assert len(built.schemas()) == SCHEMAS
        yield built
    finally:
        drop_database(url)


def _started(output: str) -> set[str]:
    """Schemas a run migrated: each child logs ``[...:<schema>] === Starting migration``."""
    return set(re.findall(r":(\w+)\] === Starting migration", output))


def test_a_killed_job_resumes_with_only_the_schemas_left(stack: Stack) -> None:
    assert stack.with_migration("0002_slow_priority") == set()
    log = ROOT / ".data" / f"migrate-killed-{os.getpid()}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as stream:
        # Its own process group: SIGKILL to the group is what a Job's deadline or a lost node does
        # to the container (manage.py and every per-schema child at once).
        job = subprocess.Popen(
            [sys.executable, "manage.py", *JOB_COMMAND, "--parallel", "2"],
            cwd=ROOT,
            env=stack.env(stage=2, sleep=3),
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                runs = stack.runs()
                if runs and 2 <= int(str(runs[-1]["done"])) <= SCHEMAS - 3:
                    break
                assert job.poll() is None, log.read_text()
                time.sleep(0.1)
            else:
                pytest.fail("the run never reached two migrated schemas:\n" + log.read_text())
        finally:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    killed_output = log.read_text()
    log.unlink()

    migrated_before = stack.with_migration("0002_slow_priority")
    assert 2 <= len(migrated_before) < SCHEMAS, killed_output
    (killed_run,) = stack.runs()
    assert killed_run["status"] == "running"  # nobody got to say otherwise
    assert killed_run["to_migrate"] == SCHEMAS

    rerun = stack.manage(*JOB_COMMAND, "--parallel", "2", stage=2)
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output
    left = set(stack.schemas()) - migrated_before
    assert (
        f"[pending-only] {len(migrated_before)} of {SCHEMAS} tenant schema(s) already at the "
        f"latest migration; migrating {len(left)}" in output
    )
    assert _started(output) == left  # only what was left, nothing twice
    assert stack.with_migration("0002_slow_priority") == set(stack.schemas())

    killed, resumed = stack.runs()
    assert killed["status"] == "interrupted"
    assert resumed["status"] == "succeeded"
    assert resumed["already_current"] == len(migrated_before)
    assert (resumed["to_migrate"], resumed["done"], resumed["failed"]) == (len(left), len(left), 0)
    # A line per schema and the summaries, in the Job's log.
    for schema in left:
        assert re.search(rf"run {resumed['id']}: {schema} migrated in [\d.]+ s", output), output
    assert re.search(
        rf"run {resumed['id']} finished: {len(left)} of {len(left)} done, 0 failed, 0 left", output
    )
    assert "marked interrupted" in output

    noop = stack.manage(*JOB_COMMAND, "--parallel", "2", stage=2)
    assert noop.returncode == 0, noop.stderr
    assert _started(noop.stdout + noop.stderr) == set()


def test_a_failing_schema_stops_the_run_without_continue_on_error(stack: Stack) -> None:
    result = stack.manage(*JOB_COMMAND, "--parallel", "1", stage=3)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 tenant schema(s) failed to migrate: t_beta (stopped at the first failure)" in output
    # In the run's order (by slug): those before beta migrated, beta failed, nothing after it started.
    order = stack.schemas()
    before = set(order[: order.index("t_beta")])
    assert "t_alpha" in before
    assert stack.with_migration("0003_unique_title") == before
    assert _started(output) == before | {"t_beta"}
    run = stack.runs()[-1]
    assert (run["status"], run["done"], run["failed"]) == ("failed", len(before), 1)
    assert stack.failures(run["id"]) == ["t_beta"]


def test_continue_on_error_migrates_the_others_and_lists_the_failed(stack: Stack) -> None:
    before_this_run = stack.with_migration("0003_unique_title")
    result = stack.manage(*JOB_COMMAND, "--parallel", "2", "--continue-on-error", stage=3)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "CommandError: 1 tenant schema(s) failed to migrate: t_beta" in output
    assert re.search(r"t_beta FAILED after [\d.]+ s: migrate exited with status 1", output)
    assert "tenant schema(s) failed: t_beta" in output
    everyone_else = set(stack.schemas()) - {"t_beta"}
    assert stack.with_migration("0003_unique_title") == everyone_else
    run = stack.runs()[-1]
    assert run["status"] == "failed"
    assert (run["to_migrate"], run["done"], run["failed"]) == (
        SCHEMAS - len(before_this_run),
        SCHEMAS - len(before_this_run) - 1,
        1,
    )
    assert stack.failures(run["id"]) == ["t_beta"]
    # beta's notes, colliding ids and all, are as they were; alpha's same-id notes are its own.
    assert stack.query('SELECT id, title FROM "t_beta".migrateapp_note ORDER BY id') == [
        (1, "same"),
        (2, "same"),
    ]
    assert stack.query('SELECT id, title FROM "t_alpha".migrateapp_note ORDER BY id') == [
        (1, "first"),
        (2, "second"),
    ]

    # The tenant's data fixed, the rerun migrates beta alone and succeeds.
    stack.query("UPDATE \"t_beta\".migrateapp_note SET title = 'other' WHERE id = 2")
    fixed = stack.manage(*JOB_COMMAND, "--parallel", "2", "--continue-on-error", stage=3)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert _started(fixed.stdout + fixed.stderr) == {"t_beta"}
    assert stack.with_migration("0003_unique_title") == set(stack.schemas())
    assert stack.runs()[-1]["status"] == "succeeded"


def test_the_standard_executor_carries_on_too(stack: Stack) -> None:
    """In-process (``--executor=standard``): the exception is logged with the schema, the
    connection starts afresh for the next schema, and the progress row is still written."""
    back = stack.manage("migrate_schemas", "--tenant", "migrateapp", "0002", "--noinput", stage=3)
    assert back.returncode == 0, back.stdout + back.stderr
    # Back at 0002 (no unique constraint): alpha's titles now collide, beta's no longer do.
    stack.query("UPDATE \"t_beta\".migrateapp_note SET title = 'other' WHERE id = 2")
    stack.query("UPDATE \"t_alpha\".migrateapp_note SET title = 'same'")
    result = stack.manage(
        "migrate_schemas",
        "--tenant",
        "--executor=standard",
        "--noinput",
        "--continue-on-error",
        stage=3,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 tenant schema(s) failed to migrate: t_alpha" in output
    assert "IntegrityError" in output
    assert stack.with_migration("0003_unique_title") == set(stack.schemas()) - {"t_alpha"}
    run = stack.runs()[-1]
    assert run["executor"] == "standard"
    assert (run["done"], run["failed"]) == (SCHEMAS - 1, 1)
    assert stack.failures(run["id"]) == ["t_alpha"]
