# SPDX-License-Identifier: AGPL-3.0-or-later
"""The instructor's pages (thin: the logic lives in services)."""

from .home import HomeView, JobsFragmentView
from .images import ThumbnailView
from .jobs import CancelJobView, DeleteJobView, JobProgressView, RetryJobView
from .new_job import NewJobView, PreviewView
from .publish import PublishView, UnpublishView
from .review import (
    AcceptView,
    JobView,
    MergeView,
    MoveView,
    RenameView,
    ResetView,
    SplitView,
    ToBinView,
)

__all__ = [
    "AcceptView",
    "CancelJobView",
    "DeleteJobView",
    "HomeView",
    "JobProgressView",
    "JobView",
    "JobsFragmentView",
    "MergeView",
    "MoveView",
    "NewJobView",
    "PreviewView",
    "PublishView",
    "RenameView",
    "ResetView",
    "RetryJobView",
    "SplitView",
    "ThumbnailView",
    "ToBinView",
    "UnpublishView",
]
