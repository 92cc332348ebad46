"""The stdlib ``platform`` module must never be shadowed by the platform/ folder of apps."""

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_DIR = ROOT / "platform"
PROBE = "import platform, sys; platform.system(); print(platform.__file__)"


def _platform_children() -> set[str]:
    return {p.name for p in PLATFORM_DIR.iterdir() if (p / "__init__.py").exists()}


def test_import_platform_is_the_standard_library_under_pytest() -> None:
    assert platform.system()
    assert not str(platform.__file__).startswith(str(ROOT))


def test_platform_folder_is_not_a_package() -> None:
    assert PLATFORM_DIR.is_dir()
    assert not (PLATFORM_DIR / "__init__.py").exists()
    assert not list(PLATFORM_DIR.glob("*.py"))


def test_platform_children_do_not_shadow_stdlib_or_installed_names() -> None:
    children = _platform_children()
    assert {"accounts", "apikit"} <= children
    assert children.isdisjoint(sys.stdlib_module_names)
    installed = set(importlib.metadata.packages_distributions())
    assert children.isdisjoint(installed)


def test_platform_apps_import_from_their_folder() -> None:
    import accounts
    import apikit

    assert Path(accounts.__file__).parent == PLATFORM_DIR / "accounts"
    assert Path(apikit.__file__).parent == PLATFORM_DIR / "apikit"


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", PROBE],
        [sys.executable, "-c", "import settings; " + PROBE],
        [sys.executable, "manage.py", "shell", "-c", PROBE],
    ],
    ids=["python-c", "after-settings-bootstrap", "manage.py"],
)
def test_import_platform_is_the_standard_library_from_the_repo_root(command: list[str]) -> None:
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    reported = result.stdout.strip().splitlines()[-1]
    assert reported.endswith("platform.py")
    assert not reported.startswith(str(ROOT))
