# SPDX-License-Identifier: AGPL-3.0-or-later
"""Hand clusters to markers as Plom tags (and optionally marking priority), undoably.

Every tag-on-task link publishing adds is recorded in :class:`PublishedTagLink`, with
whether the link or the tag row already existed and the task's previous priority, so
that unpublishing removes exactly what was added and nothing else.  The Qt client's
"prefer tasks tagged ..." option then hands a marker one cluster after another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from plom.tagging import is_valid_tag_text
from plom_server.Base.models import HueyTaskTracker
from plom_server.Base.services import Settings
from plom_server.Mark.models import MarkingTask, MarkingTaskTag
from plom_server.Papers.services import SpecificationService

from ..conf import clustering_settings
from ..models import AnswerCluster, AnswerMembership, ClusteringJob, PublishedTagLink
from .errors import JobError, StaleEdit

TaskTagLink = MarkingTaskTag.task.through
_UNSAFE = re.compile(r"[^\w\-+:;.]+")
#: Plom's key-value entry that the Task Order page shows.
STRATEGY_KEY = "task_order_strategy"


@dataclass
class PublishPlan:
    """What publishing a job writes: one tag per cluster and the tasks it goes on."""

    tags: dict[str, list[int]] = field(default_factory=dict)  # text -> task pks
    cluster_of_tag: dict[str, AnswerCluster] = field(default_factory=dict)

    @property
    def task_count(self) -> int:
        """How many marking tasks get a tag."""
        return sum(len(pks) for pks in self.tags.values())


def tag_prefix(job: ClusteringJob) -> str:
    """E.g. ``cl_q3`` (``cl_q3v2`` when the exam has several versions)."""
    prefix = clustering_settings.TAG_PREFIX
    several = len(SpecificationService.get_list_of_versions()) > 1
    version = f"v{job.version}" if several else ""
    return f"{prefix}_q{job.question_index}{version}"


def tag_text(prefix: str, cluster: AnswerCluster, taken: set[str]) -> str:
    """A readable, valid, unique tag for a cluster, e.g. ``cl_q3_B`` or ``cl_q3_g07``."""
    name = _UNSAFE.sub("_", cluster.name).strip("_") or f"g{cluster.number:02d}"
    text = f"{prefix}_{name}"
    if text in taken:
        text = f"{prefix}_{name}_{cluster.number}"
    if not is_valid_tag_text(text) or text.startswith("@"):
        text = f"{prefix}_g{cluster.number:02d}"
    taken.add(text)
    return text


def plan(job: ClusteringJob) -> PublishPlan:
    """Work out the tags and tasks without writing anything (shown before publishing)."""
    if job.status != HueyTaskTracker.COMPLETE:
        raise JobError(
            f"Job {job.pk} is {job.get_status_display()}: nothing to publish."
        )
    prefix = tag_prefix(job)
    result = PublishPlan()
    taken: set[str] = set()
    members = AnswerMembership.objects.filter(
        job=job, cluster__isnull=False
    ).values_list("cluster_id", "paper_id")
    papers_of: dict[int, list[int]] = {}
    for cluster_pk, paper_pk in members:
        papers_of.setdefault(cluster_pk, []).append(paper_pk)
    tasks = MarkingTask.objects.filter(
        question_index=job.question_index, question_version=job.version
    ).exclude(status=MarkingTask.OUT_OF_DATE)
    task_of_paper = dict(tasks.values_list("paper_id", "pk"))
    for cluster in job.clusters.order_by("number"):
        pks = [
            task_of_paper[p]
            for p in papers_of.get(cluster.pk, [])
            if p in task_of_paper
        ]
        if not pks:
            continue
        text = tag_text(prefix, cluster, taken)
        result.tags[text] = pks
        result.cluster_of_tag[text] = cluster
    return result


def _tag_by_text(text: str, user: User | None) -> tuple[MarkingTaskTag, bool]:
    """Find a tag by its text only (Plom may hold duplicates), else create it."""
    tag = MarkingTaskTag.objects.filter(text=text).order_by("pk").first()
    if tag is not None:
        return tag, False
    return MarkingTaskTag.objects.create(text=text, user=user), True


def publish(
    job: ClusteringJob,
    user: User | None = None,
    *,
    priority: bool = False,
    revision: int | None = None,
) -> PublishPlan:
    """Tag each cluster's marking tasks; optionally order marking cluster by cluster.

    Publishing again first removes what the previous publish of this job added, so it
    is harmless and reflects later edits.  Another job of the same question and version
    that is published is unpublished first (its tags would contradict these).

    Args:
        job: a COMPLETE job.
        user: recorded as the creator of new tags.
        priority: also raise the marking priority of clustered tasks so that the
            largest cluster's papers are handed out first, one cluster after another.
        revision: the groups' revision the publisher saw; publishing anything else is
            refused with :class:`StaleEdit`.

    Returns:
        The tags written and the tasks they went on.
    """
    with transaction.atomic():
        job = ClusteringJob.objects.select_for_update().get(pk=job.pk)
        if revision is not None and int(revision) != job.revision:
            raise StaleEdit()
        others = ClusteringJob.objects.filter(
            question_index=job.question_index,
            version=job.version,
            published_at__isnull=False,
        ).exclude(pk=job.pk)
        for other in others:
            _unpublish_locked(other)
        if job.is_published:
            _unpublish_locked(job)
        the_plan = plan(job)
        _write_tags(job, the_plan, user)
        if priority:
            _raise_priorities(job, the_plan)
        job.published_at = timezone.now()
        job.published_revision = job.revision
        job.published_priority = priority
        job.save(
            update_fields=["published_at", "published_revision", "published_priority"]
        )
    return the_plan


def _write_tags(job: ClusteringJob, the_plan: PublishPlan, user: User | None) -> None:
    links = []
    new_through = []
    for text, task_pks in the_plan.tags.items():
        tag, created = _tag_by_text(text, user)
        existing = set(
            TaskTagLink.objects.filter(
                markingtasktag_id=tag.pk, markingtask_id__in=task_pks
            ).values_list("markingtask_id", flat=True)
        )
        for task_pk in task_pks:
            added = task_pk not in existing
            if added:
                new_through.append(
                    TaskTagLink(markingtasktag_id=tag.pk, markingtask_id=task_pk)
                )
            links.append(
                PublishedTagLink(
                    job=job,
                    task_id=task_pk,
                    tag=tag,
                    link_added=added,
                    tag_created=created,
                )
            )
    TaskTagLink.objects.bulk_create(new_through, batch_size=1000)
    PublishedTagLink.objects.bulk_create(links, batch_size=1000)


def _raise_priorities(job: ClusteringJob, the_plan: PublishPlan) -> None:
    """Give cluster i (largest first) one priority above every other task's."""
    todo = MarkingTask.objects.filter(
        question_index=job.question_index,
        question_version=job.version,
        status=MarkingTask.TO_DO,
    )
    base = (todo.aggregate(top=Max("marking_priority"))["top"] or 0.0) + 1.0
    ordered = sorted(the_plan.tags.items(), key=lambda item: -len(item[1]))
    new_priority: dict[int, float] = {}
    for rank, (_, task_pks) in enumerate(ordered):
        for pk in task_pks:
            new_priority[pk] = base + (len(ordered) - rank)
    tasks = list(todo.filter(pk__in=new_priority))
    links = {
        link.task_id: link
        for link in PublishedTagLink.objects.filter(job=job, task_id__in=new_priority)
    }
    for task in tasks:
        link = links[task.pk]
        link.previous_priority = task.marking_priority
        link.priority_set = new_priority[task.pk]
        task.marking_priority = new_priority[task.pk]
    MarkingTask.objects.bulk_update(tasks, ["marking_priority"], batch_size=1000)
    PublishedTagLink.objects.bulk_update(
        links.values(), ["previous_priority", "priority_set"], batch_size=1000
    )
    if not job.previous_task_order_strategy:
        job.previous_task_order_strategy = str(
            Settings.key_value_store_get_or_none(STRATEGY_KEY) or ""
        )
        job.save(update_fields=["previous_task_order_strategy"])
    Settings.key_value_store_set(STRATEGY_KEY, "custom")


def unpublish(job: ClusteringJob) -> int:
    """Remove exactly the tag links (and tag rows) this job's publishing added.

    Priorities that publishing changed are restored unless someone changed them since.

    Returns:
        How many tag links were removed.
    """
    with transaction.atomic():
        job = ClusteringJob.objects.select_for_update().get(pk=job.pk)
        return _unpublish_locked(job)


def _unpublish_locked(job: ClusteringJob) -> int:
    links = PublishedTagLink.objects.filter(job=job)
    removed = 0
    for link in links.filter(link_added=True):
        removed += TaskTagLink.objects.filter(
            markingtasktag_id=link.tag_id, markingtask_id=link.task_id
        ).delete()[0]
    created_tags = set(links.filter(tag_created=True).values_list("tag_id", flat=True))
    _restore_priorities(links.filter(priority_set__isnull=False))
    links.delete()
    for tag in MarkingTaskTag.objects.filter(pk__in=created_tags):
        if not tag.task.exists():  # never delete a tag someone else also uses
            tag.delete()
    if job.previous_task_order_strategy:
        still_custom = (
            ClusteringJob.objects.filter(
                published_priority=True, published_at__isnull=False
            )
            .exclude(pk=job.pk)
            .exists()
        )
        if not still_custom:
            Settings.key_value_store_set(STRATEGY_KEY, job.previous_task_order_strategy)
    job.published_at = None
    job.published_revision = None
    job.published_priority = False
    job.previous_task_order_strategy = ""
    job.save(
        update_fields=[
            "published_at",
            "published_revision",
            "published_priority",
            "previous_task_order_strategy",
        ]
    )
    return removed


def _restore_priorities(links) -> None:
    restore = {link.task_id: link for link in links}
    tasks = list(MarkingTask.objects.filter(pk__in=restore))
    changed = []
    for task in tasks:
        link = restore[task.pk]
        if task.marking_priority == link.priority_set:
            task.marking_priority = link.previous_priority
            changed.append(task)
    MarkingTask.objects.bulk_update(changed, ["marking_priority"], batch_size=1000)
