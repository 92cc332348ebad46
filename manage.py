#!/usr/bin/env python
"""Django's command-line utility for Verdant."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
    from django.core.management import execute_from_command_line

    import settings  # noqa: F401  (puts platform/ on sys.path before any app is imported)

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
