# SPDX-License-Identifier: AGPL-3.0-or-later
"""Background processes of the demo server: a Huey consumer and Django's web server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def demo_environment(base: Path) -> dict[str, str]:
    """The environment every demo process shares (SQLite in ``base``, plugin settings)."""
    env = dict(os.environ)
    env.update(
        PLOM_BASE_DIR=str(base),
        PLOM_DATABASE_BACKEND="sqlite",
        DJANGO_SETTINGS_MODULE="plom_clustering_plugin.settings",
        # One worker per queue: SQLite allows one writer at a time.
        PLOM_HUEY_WORKERS="1",
        PLOM_HUEY_PARENT_WORKERS="1",
    )
    return env


def _django(args: list[str], base: Path, log: Path) -> subprocess.Popen:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "django", *args],
        env=demo_environment(base),
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C in the terminal is handled by the demo itself
    )


def start_consumer(base: Path) -> subprocess.Popen:
    """A Huey consumer on Plom's ``chores`` queue, logging to ``base/huey.log``."""
    return _django(
        ["djangohuey", "--queue", "chores", "-w", "1"], base, base / "huey.log"
    )


def start_web_server(base: Path, port: int) -> subprocess.Popen:
    """Django's web server on 127.0.0.1, logging to ``base/web.log``."""
    return _django(
        ["runserver", "--noreload", f"127.0.0.1:{port}"], base, base / "web.log"
    )


def stop(processes: list[subprocess.Popen], timeout: float = 10.0) -> None:
    """Terminate the processes, then kill what is still running after ``timeout``."""
    # A second Ctrl-C while shutting down must not leave orphans behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
