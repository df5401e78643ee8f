# SPDX-License-Identifier: AGPL-3.0-or-later
"""Jobs, their clusters, each paper's place, and exactly what publishing wrote.

Names and tables are the app's own (label ``plom_clustering``), distinct from upstream's
``QuestionClustering`` app so that both can be installed side by side.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import models
from plom_server.Base.models import HueyTaskTracker
from plom_server.Mark.models import MarkingTask, MarkingTaskTag
from plom_server.Papers.models import Paper


class ClusteringJob(HueyTaskTracker):
    """One run of "cluster this question": where to crop, how, progress and provenance."""

    MCQ = "mcq"
    HME = "hme"
    KIND_CHOICES = [(MCQ, "Letter (A-F)"), (HME, "Math expression")]

    question_index = models.PositiveIntegerField()
    version = models.PositiveIntegerField()
    page_number = models.PositiveIntegerField()
    # Plom's fractional coordinates, relative to the reference page's QR-code centres.
    left = models.FloatField()
    top = models.FloatField()
    right = models.FloatField()
    bottom = models.FloatField()
    kind = models.CharField(max_length=8, choices=KIND_CHOICES)
    model_name = models.CharField(max_length=64, blank=True, default="")
    model_version = models.CharField(max_length=32, blank=True, default="")
    model_sha256 = models.CharField(max_length=64, blank=True, default="")
    parameters = models.JSONField(default=dict, blank=True)
    stage = models.CharField(max_length=32, blank=True, default="")
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    finished = models.DateTimeField(null=True, blank=True)
    # Bumped by every review edit: the optimistic concurrency check of the review UI.
    revision = models.PositiveIntegerField(default=0)
    published_revision = models.PositiveIntegerField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_priority = models.BooleanField(default=False)
    previous_task_order_strategy = models.CharField(
        max_length=32, blank=True, default=""
    )

    class Meta:
        db_table = "plom_clustering_job"
        ordering = ["-created"]

    def __str__(self) -> str:
        """Describe the job as a user would."""
        return f"Clustering job {self.pk}: q{self.question_index} v{self.version} ({self.kind})"

    @property
    def rect(self) -> dict[str, float]:
        """The answer rectangle in the form Plom's RectangleExtractor takes."""
        return {
            "left": self.left,
            "top": self.top,
            "right": self.right,
            "bottom": self.bottom,
        }

    @property
    def model_label(self) -> str:
        """The model that grouped the answers, e.g. ``hme-symbols v10`` ("" before it ran)."""
        if not self.model_name:
            return ""
        return (
            f"{self.model_name} v{self.model_version}"
            if self.model_version
            else self.model_name
        )

    @property
    def is_published(self) -> bool:
        """True while tags of this job are on marking tasks."""
        return self.published_at is not None

    @property
    def changed_since_published(self) -> bool:
        """True when the groups were edited after the last publish."""
        return self.is_published and self.published_revision != self.revision


class AnswerCluster(models.Model):
    """A group of answers in one job.

    Clusters the machine made are never deleted (a merge empties them), so that a reset
    can always restore the machine's assignment; clusters a user makes can be.
    """

    GROUP = "group"
    OTHER = "other"
    KIND_CHOICES = [(GROUP, "Group"), (OTHER, "One-off answers")]

    job = models.ForeignKey(
        ClusteringJob, on_delete=models.CASCADE, related_name="clusters"
    )
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=64)
    machine_name = models.CharField(max_length=64, blank=True, default="")
    kind = models.CharField(max_length=8, choices=KIND_CHOICES, default=GROUP)
    made_by_machine = models.BooleanField(default=True)

    class Meta:
        db_table = "plom_clustering_cluster"
        ordering = ["job", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "number"], name="plom_clustering_cluster_number_unique"
            )
        ]

    def __str__(self) -> str:
        """Name the cluster."""
        return f"{self.name} (job {self.job_id}, #{self.number})"


class AnswerMembership(models.Model):
    """Where one paper's answer sits in a job: its cluster, or a bin, and how sure."""

    ANSWERED = "answered"
    LOW_CONFIDENCE = "low_confidence"
    BLANK = "blank"
    UNREADABLE = "unreadable"
    NOT_SCANNED = "not_scanned"
    STATE_CHOICES = [
        (ANSWERED, "Answered"),
        (LOW_CONFIDENCE, "Needs review"),
        (BLANK, "Blank"),
        (UNREADABLE, "Unreadable"),
        (NOT_SCANNED, "Not scanned"),
    ]

    job = models.ForeignKey(
        ClusteringJob, on_delete=models.CASCADE, related_name="memberships"
    )
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="+")
    cluster = models.ForeignKey(
        AnswerCluster,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="members",
    )
    state = models.CharField(max_length=16, choices=STATE_CHOICES)
    # The machine's assignment, never edited: what "reset" restores.
    machine_cluster = models.ForeignKey(
        AnswerCluster,
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="+",
    )
    machine_state = models.CharField(max_length=16, choices=STATE_CHOICES)
    suggested_cluster = models.ForeignKey(
        AnswerCluster,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    confidence = models.FloatField(default=1.0)
    distance = models.FloatField(default=0.0)
    message = models.TextField(blank=True, default="")
    # float16 embedding of a written answer: lets a reviewer split a group or get
    # suggestions without running the model again.
    embedding = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "plom_clustering_membership"
        ordering = ["job", "paper__paper_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "paper"], name="plom_clustering_membership_unique"
            )
        ]

    def __str__(self) -> str:
        """Describe the membership."""
        return f"paper {self.paper_id} in job {self.job_id}: {self.state}"


class PublishedTagLink(models.Model):
    """One tag-on-task link publishing made, so that unpublishing removes exactly it.

    ``link_added`` is False when the task already carried that tag before we published
    (then unpublishing leaves the link); ``tag_created`` is True when publishing created
    the tag row itself; ``previous_priority`` is the task's priority before publishing
    changed it (None when it did not).
    """

    job = models.ForeignKey(
        ClusteringJob, on_delete=models.CASCADE, related_name="published_links"
    )
    task = models.ForeignKey(MarkingTask, on_delete=models.CASCADE, related_name="+")
    tag = models.ForeignKey(MarkingTaskTag, on_delete=models.CASCADE, related_name="+")
    link_added = models.BooleanField(default=True)
    tag_created = models.BooleanField(default=False)
    previous_priority = models.FloatField(null=True, blank=True)
    priority_set = models.FloatField(null=True, blank=True)

    class Meta:
        db_table = "plom_clustering_published_link"

    def __str__(self) -> str:
        """Describe the link."""
        return f"tag {self.tag_id} on task {self.task_id} (job {self.job_id})"
