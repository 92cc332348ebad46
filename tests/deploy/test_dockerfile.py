"""The Dockerfile's promises, checked without a Docker engine: two stages, no compilers in the
final one, a non-root user, collectstatic at build, gunicorn by default, a tight build context."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPILERS = ("build-essential", "gcc", "g++", "clang", "make ", "python3-dev", "libpq-dev")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def test_multi_stage_on_slim_python_311() -> None:
    stages = _stages()
    assert len(stages) >= 2
    args = dict(
        rest.split("=", 1) for keyword, rest in _instructions() if keyword == "ARG" and "=" in rest
    )
    assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*", args["PYTHON_IMAGE"])
    assert stages[-1][0][1].split()[0] == "${PYTHON_IMAGE}"


def test_final_stage_has_no_compilers_and_runs_as_non_root() -> None:
    final = _stages()[-1]
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    for compiler in COMPILERS:
        assert compiler not in runs, compiler
    copies_from_build = [rest for keyword, rest in final if keyword == "COPY" and "--from" in rest]
    assert copies_from_build == ["--from=build /opt/venv /opt/venv"]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, "the final stage must switch to a non-root user"
    uid = users[-1].split(":")[0]
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit()
    assert int(uid) != 0
    # The user switch comes after every RUN: nothing at run time is done as root.
    keywords = [keyword for keyword, _ in final]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")


def test_static_files_are_collected_at_build_and_gunicorn_serves() -> None:
    final = _stages()[-1]
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "manage.py collectstatic --noinput" in runs
    (cmd,) = [rest for keyword, rest in final if keyword == "CMD"]
    assert cmd == '["gunicorn", "-c", "settings/gunicorn.conf.py", "settings.wsgi:application"]'
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    assert "DJANGO_SETTINGS_MODULE=settings.production" in env


def test_build_time_collectstatic_works_with_production_settings(tmp_path: Path) -> None:
    """The image's collectstatic step, run here: production settings with a throwaway key and
    nothing else (no database, no Redis at build time)."""
    keep = {"PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={
            **{k: v for k, v in os.environ.items() if k in keep},
            "DJANGO_SETTINGS_MODULE": "settings.production",
            "SECRET_KEY": f"collectstatic-only-{secrets.token_hex(32)}",
            "STATIC_ROOT": str(tmp_path / "static"),
        },
    )
    assert result.returncode == 0, result.stderr
    # WhiteNoise's manifest storage: hashed names, so the files can be cached forever.
    assert (tmp_path / "static" / "staticfiles.json").is_file()
    assert list((tmp_path / "static" / "admin").rglob("*.css.gz"))


def test_dockerignore_keeps_the_build_context_small_and_secret_free() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".data", "tests", ".env", "**/__pycache__"} <= ignored
