# SPDX-License-Identifier: AGPL-3.0-or-later
"""Batch augmentation in torch: other writers, other pens, other scanners.

crohme-dev strokes are rendered 1 px wide from online ink, while real answers are
scanned pen ink 2-4 px wide, faint or blotchy, a little rotated and sheared.  Each
image of a batch gets its own affine warp, stroke width, ink level, blur and noise.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def _affine(
    batch: torch.Tensor, gen: torch.Generator, strength: float, zoom_out: float
) -> torch.Tensor:
    """Random rotation, shear, aspect change and shift (per image).

    With ``zoom_out`` below 1, half of the images are also shrunk about the centre by a
    factor drawn from ``[zoom_out, 1]``, as the embedding's smaller second reading does.
    """
    n = batch.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=gen)

    angle = uniform(-4, 4) * strength * math.pi / 180
    shear = uniform(-0.25, 0.25) * strength
    scale_x = 1 + uniform(-0.12, 0.12) * strength
    scale_y = 1 + uniform(-0.12, 0.12) * strength
    if zoom_out < 1:  # drawn only when asked: other runs keep their random stream
        shrink = torch.where(uniform(0, 1) < 0.5, uniform(zoom_out, 1), 1.0)
        scale_x, scale_y = scale_x * shrink, scale_y * shrink
    shift_x = uniform(-0.04, 0.04) * strength
    shift_y = uniform(-0.06, 0.06) * strength
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    # Inverse map (output -> input coordinates), in normalised [-1, 1] units.
    theta[:, 0, 0] = cos / scale_x
    theta[:, 0, 1] = (-sin + shear) / scale_x * (batch.shape[2] / batch.shape[3])
    theta[:, 1, 0] = sin / scale_y * (batch.shape[3] / batch.shape[2])
    theta[:, 1, 1] = cos / scale_y
    theta[:, 0, 2] = shift_x
    theta[:, 1, 2] = shift_y
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid, align_corners=False, padding_mode="zeros")


def _pen(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random stroke width: none, 3x3 or 5x5 dilation (2-4 px scanned ink)."""
    n = batch.shape[0]
    pick = torch.rand(n, generator=gen)
    wide3 = F.max_pool2d(batch, 3, stride=1, padding=1)
    wide5 = F.max_pool2d(wide3, 3, stride=1, padding=1)
    out = torch.where((pick < 0.55).view(n, 1, 1, 1), wide3, batch)
    return torch.where((pick > 0.85).view(n, 1, 1, 1), wide5, out)


def _scanner(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Ink level, blur and noise of a scan (in ink units: 1 = full ink)."""
    n = batch.shape[0]
    level = 0.55 + 0.45 * torch.rand(n, 1, 1, 1, generator=gen)
    blurred = F.avg_pool2d(batch, 3, stride=1, padding=1)
    blur = (torch.rand(n, 1, 1, 1, generator=gen) < 0.4).float()
    out = (blur * blurred + (1 - blur) * batch) * level
    noise = torch.randn(out.shape, generator=gen) * 0.04
    noise_on = (torch.rand(n, 1, 1, 1, generator=gen) < 0.5).float()
    return (out + noise * noise_on).clamp(0, 1)


def augment(
    batch: torch.Tensor,
    gen: torch.Generator,
    strength: float = 1.0,
    zoom_out: float = 1.0,
) -> torch.Tensor:
    """Augment ``(N, 1, H, W)`` float ink canvases in ``[0, 1]``.

    ``zoom_out`` below 1 shrinks half of the images by up to that factor.
    """
    out = _pen(batch, gen)
    out = _affine(out, gen, strength, zoom_out)
    return _scanner(out, gen)
