# SPDX-License-Identifier: AGPL-3.0-or-later
"""What the review page shows: cluster cards largest first, the bins, the problems."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models import AnswerCluster, AnswerMembership, ClusteringJob
from ..services.thumbnails import thumbnail_size


@dataclass
class ClusterCard:
    """One cluster and its answers."""

    cluster: AnswerCluster
    answers: list[AnswerMembership] = field(default_factory=list)

    @property
    def size(self) -> int:
        """How many answers it holds."""
        return len(self.answers)

    @property
    def renamed(self) -> bool:
        """True when a user changed the machine's name."""
        return bool(self.cluster.machine_name) and (
            self.cluster.name != self.cluster.machine_name
        )


@dataclass
class ReviewPage:
    """Everything the review fragment renders."""

    job: ClusteringJob
    cards: list[ClusterCard]  # non-empty clusters, largest first, one-offs last
    targets: list[ClusterCard]  # every cluster, as "move to" choices
    review_bin: list[AnswerMembership]
    blank_bin: list[AnswerMembership]
    problems: list[AnswerMembership]  # not scanned or unreadable
    thumb_size: tuple[int, int] | None = None

    @property
    def answered(self) -> int:
        """How many answers are in clusters."""
        return sum(card.size for card in self.cards)


def review_page(job: ClusteringJob) -> ReviewPage:
    """Gather a complete job's clusters and bins (one query for all the answers)."""
    cards = {c.pk: ClusterCard(c) for c in job.clusters.all()}
    review_bin, blank_bin, problems = [], [], []
    members = (
        AnswerMembership.objects.filter(job=job)
        .defer("embedding")
        .select_related("paper", "suggested_cluster")
        .order_by("paper__paper_number")
    )
    for m in members:
        if m.cluster_id is not None:
            cards[m.cluster_id].answers.append(m)
        elif m.state == AnswerMembership.LOW_CONFIDENCE:
            review_bin.append(m)
        elif m.state == AnswerMembership.BLANK:
            blank_bin.append(m)
        else:
            problems.append(m)

    def order(card: ClusterCard) -> tuple:
        return (
            card.cluster.kind == AnswerCluster.OTHER,
            -card.size,
            card.cluster.number,
        )

    targets = sorted(cards.values(), key=order)
    return ReviewPage(
        job=job,
        cards=[card for card in targets if card.size],
        targets=targets,
        review_bin=review_bin,
        blank_bin=blank_bin,
        problems=problems,
        thumb_size=thumbnail_size(job),
    )
