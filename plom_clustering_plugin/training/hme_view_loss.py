# SPDX-License-Identifier: AGPL-3.0-or-later
"""Train the embedding as ``hme_views`` reads it: a crop and its shrunk copy, averaged.

Every shipped model since v10 is read twice at run time (the crop, and the crop shrunk
about its centre) and the two unit embeddings are averaged, but it was trained on one
reading.  With ``hme_train --views-loss 2/3`` each batch also runs shrunk and the
contrastive loss sees the mean of the two readings, so training optimises what the
clusterer will compare.  The shrink here matches :func:`.hme_views.shrink_canvases`
(area resampling, centred on a blank canvas of the original size), so the same
``--shrink`` given to ``hme_views`` afterwards reads the crops as training did.
"""

from __future__ import annotations

from fractions import Fraction

import torch
from torch.nn import functional as F

from .hme_views import shrunk_size


def shrink_batch(x: torch.Tensor, shrink: Fraction) -> torch.Tensor:
    """``(N, 1, H, W)`` canvases shrunk about their centre by ``shrink``, same size."""
    up, down = shrink.numerator, shrink.denominator
    height, width = x.shape[-2:]
    small_h, small_w = shrunk_size((height, width), shrink)
    big = x.repeat_interleave(up, dim=2).repeat_interleave(up, dim=3)
    small = F.avg_pool2d(big, down)
    top, left = (height - small_h) // 2, (width - small_w) // 2
    return F.pad(small, (left, width - small_w - left, top, height - small_h - top))


def with_shrunk(x: torch.Tensor, shrink: Fraction | None) -> torch.Tensor:
    """The batch, followed by its shrunk copy when ``shrink`` is given."""
    return x if shrink is None else torch.cat([x, shrink_batch(x, shrink)])


def first_reading(
    logits: torch.Tensor,
    embedding: torch.Tensor,
    counts: list[torch.Tensor],
    size: int,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Split a doubled batch's outputs back to ``size`` rows.

    Presence and counts come from the full-size reading only (the symbols are the
    same, and shrunk ink alone was measured to cost clean purity: v65, session 27);
    the embedding is the renormalised mean of the two readings, as ``hme_views``
    computes it at run time.
    """
    if len(embedding) == size:
        return logits, embedding, counts
    mean = F.normalize(embedding[:size] + embedding[size:], dim=1)
    return logits[:size], mean, [c[:size] for c in counts]
