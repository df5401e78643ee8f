# SPDX-License-Identifier: AGPL-3.0-or-later
"""``python -m tests [LABEL ...]``: run the suite with the test settings (Django's runner)."""

import os
import sys
from pathlib import Path


def main() -> int:
    """Run Django's test runner on ``tests`` (or the labels given)."""
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    os.chdir(root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.core.management import execute_from_command_line

    labels = sys.argv[1:] or ["tests"]
    execute_from_command_line(["django-admin", "test", "--noinput", *labels])
    return 0


if __name__ == "__main__":
    sys.exit(main())
