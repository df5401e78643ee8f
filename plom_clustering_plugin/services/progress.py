# SPDX-License-Identifier: AGPL-3.0-or-later
"""Follow a clustering job from a terminal: poll it and draw one progress line."""

from __future__ import annotations

import time
from typing import TextIO

from plom_server.Base.models import HueyTaskTracker

from ..models import ClusteringJob

#: States after which a job's row no longer changes by itself.
ENDED = (HueyTaskTracker.COMPLETE, HueyTaskTracker.ERROR)


def progress_bar(done: int, total: int, width: int = 30) -> str:
    """``[####......]``: ``done`` of ``total`` as a bar of ``width`` characters."""
    filled = min(width, width * done // total) if total else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"


def wait_for_job(
    job: ClusteringJob, stream: TextIO, label: str = "", interval: float = 0.5
) -> ClusteringJob:
    """Poll ``job`` until it is complete or in error, redrawing one line on ``stream``.

    Returns:
        The job as it ended (refreshed from the database).
    """
    prefix = f"{label}: " if label else ""
    while True:
        job.refresh_from_db()
        stage = job.stage or "queued"
        bar = progress_bar(job.done, job.total)
        stream.write(f"\r{prefix}{stage:<11}{bar} {job.done}/{job.total} ")
        stream.flush()
        if job.status in ENDED:
            stream.write("\n")
            return job
        time.sleep(interval)
