"""Project configuration package.

Importing it puts ``<root>/platform`` on ``sys.path`` so the shared Django apps (accounts, apikit, ...)
import under their own names while ``import platform`` stays the standard-library module
(DESIGN.md section 2). Every entry point (manage.py, wsgi, celery, pytest-django) imports this first.
"""

import sys
from pathlib import Path

_PLATFORM_DIR = str(Path(__file__).resolve().parent.parent / "platform")
if _PLATFORM_DIR not in sys.path:
    # append, never insert: the standard library and installed packages must always win.
    sys.path.append(_PLATFORM_DIR)

from .celery_app import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
