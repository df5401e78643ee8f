# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Hard batches: anchors the net currently embeds close together share a batch.

In a batch of 32 random expressions two look-alikes (``a`` beside ``\alpha``, ``x^2+y``
beside ``x+y^2``) rarely meet, so the contrastive loss seldom has to pull them apart;
the validation errors are exactly such look-alikes.  A hard batch is a random anchor
and its nearest other anchors by the net's own embedding (refreshed every epoch from
clean canvases), each with its partner as in :func:`.hme_data.pair_batches`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import hme_data


def nearest_groups(
    vectors: np.ndarray,
    batch_pairs: int,
    rng: np.random.Generator,
    group: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Positions of ``vectors`` in groups of ``batch_pairs`` neighbours.

    Greedy: a random unused row and the ``batch_pairs - 1`` unused rows nearest to it
    (cosine) form a group, until fewer than ``batch_pairs`` rows are left (dropped,
    as :func:`.hme_data.pair_batches` drops its last partial batch).

    With ``group`` (the expression of each row), a group takes the nearest row of
    each expression not yet in it, so that a batch opened from one of the few
    expressions with many writings holds its look-alikes rather than its own other
    writings; the rows it passes over stay free for later groups, and the grouping
    stops when the free rows span fewer than ``batch_pairs`` expressions.
    """
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    free = rng.permutation(len(unit))
    groups = []
    while len(free) >= batch_pairs:
        similarity = unit[free] @ unit[free[0]]
        take = np.argsort(-similarity, kind="stable")
        if group is not None:
            _, first = np.unique(group[free[take]], return_index=True)
            if len(first) < batch_pairs:
                break
            take = take[np.sort(first)]
        take = take[:batch_pairs]
        groups.append(free[take])
        free = np.delete(free, take)
    return groups


def mixed_batches(
    embed: Callable[[np.ndarray], np.ndarray],
    group: np.ndarray,
    anchors: np.ndarray,
    batch_pairs: int,
    hard_share: float,
    rng: np.random.Generator,
    distinct: bool = False,
) -> list[np.ndarray]:
    """One epoch's batches: ``hard_share`` of the anchors in hard batches, the rest random.

    Args:
        embed: rows -> their embeddings under the current net (called once, on the
            distinct hard anchors only).
        group: expression group per training row.
        anchors: the rows that open a pair this epoch (may repeat rows).
        batch_pairs: pairs per batch.
        hard_share: share of the anchors placed in hard batches, in ``[0, 1]``.
        rng: the epoch's generator.
        distinct: one anchor per expression in a hard batch (see
            :func:`nearest_groups`); the hard anchors left over join the random
            batches.
    """
    members = hme_data.expression_members(group)
    order = rng.permutation(anchors)
    hard_count = int(len(order) * hard_share) // batch_pairs * batch_pairs
    hard, easy = order[:hard_count], order[hard_count:]
    batches = []
    if hard_count:
        rows, position = np.unique(hard, return_inverse=True)
        vectors = embed(rows)[position]
        groups = nearest_groups(
            vectors, batch_pairs, rng, group[hard] if distinct else None
        )
        batches += [
            hme_data.with_partners(hard[g], group, members, rng) for g in groups
        ]
        if distinct:
            used = np.zeros(len(hard), bool)
            for g in groups:
                used[g] = True
            easy = rng.permutation(np.concatenate([easy, hard[~used]]))
    batches += hme_data.partnered_chunks(easy, group, members, batch_pairs, rng)
    return [batches[i] for i in rng.permutation(len(batches))]
