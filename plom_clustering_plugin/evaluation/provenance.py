# SPDX-License-Identifier: AGPL-3.0-or-later
"""Which code produced a result: the git commit and a hash of every ML core file.

The ML core changes often; a figure is only comparable with another one measured on
the same code, so every evaluation result records this fingerprint.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def git_head() -> str | None:
    """The checked-out commit, or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PACKAGE,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def ml_file_hashes() -> dict[str, str]:
    """Short sha256 of each ``ml/*.py`` file as it is on disk now (edits included)."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in sorted((PACKAGE / "ml").glob("*.py"))
    }


def code_fingerprint() -> dict:
    """Commit plus ML core file hashes."""
    return {"git_head": git_head(), "ml_files_sha256": ml_file_hashes()}
