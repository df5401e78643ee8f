# SPDX-License-Identifier: AGPL-3.0-or-later
"""Huey tasks, thin wrappers around services (the consumer autodiscovers this module)."""

from __future__ import annotations

import huey.api
from django_huey import db_task

from .conf import clustering_settings


@db_task(queue=clustering_settings.QUEUE, context=True)
def huey_cluster_question(job_pk: int, *, task: huey.api.Task | None = None) -> bool:
    """Run one clustering job; the job row records success or the error."""
    from .services.jobs import run_job

    assert task is not None
    run_job(job_pk, task.id)
    return True
