# SPDX-License-Identifier: AGPL-3.0-or-later
"""The letter network and its batch augmentation (torch; training only).

A small VGG-style CNN: the 64x64 canvas is average-pooled to 32x32 inside the network
(so run time feeds the canvas as it is; training feeds 32x32 directly, augmented at
that size because it is 4x cheaper), six 3x3 conv + BatchNorm + ReLU layers with three
max-pools, global average pooling and a 12-way head (11 letters + "not a letter").
One full-resolution conv fewer than prior art's 0.51 M-parameter net: 0.30 M
parameters, 1.6x faster to train (a shared 2-core machine).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..ml.letters import LETTERS

CLASSES = len(LETTERS) + 1
WIDTHS = (24, "pool", 48, 48, "pool", 96, 96, "pool", 160)


class LetterNet(nn.Module):
    """Pooled canvas ``(N, 1, 32, 32)`` ink in ``[0, 1]`` -> ``(N, 12)`` logits.

    ``pool`` turns a run-time ``64x64`` canvas into that input.
    """

    def __init__(self, widths=WIDTHS, dropout: float = 0.2) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2)
        layers: list[nn.Module] = []
        channels = 1
        for width in widths:
            if width == "pool":
                layers.append(nn.MaxPool2d(2))
                continue
            layers += [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of pooled ``32x32`` canvases."""
        return self.head(self.features(x).mean(dim=(2, 3)))


class ExportWrapper(nn.Module):
    """What the ONNX file computes: 11 letter probabilities and "not a letter"."""

    def __init__(self, net: LetterNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``probabilities`` (N, 11) summing to 1, ``reject`` (N, 1)."""
        p = torch.softmax(self.net(self.net.pool(x)), dim=1)
        letters = p[:, : CLASSES - 1]
        letters = letters / letters.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return letters, p[:, CLASSES - 1 :]


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random affine, pen width, blur, contrast and noise on a batch of canvases."""
    n = x.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = uniform(-12, 12) * math.pi / 180
    shear = uniform(-0.25, 0.25)
    scale = uniform(0.85, 1.12)
    aspect = torch.exp(uniform(-0.12, 0.12))
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = 1 / (scale * aspect), aspect / scale  # the grid maps output to input
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * sx
    theta[:, 0, 1] = (-sin + shear) * sx
    theta[:, 1, 0] = sin * sy
    theta[:, 1, 1] = cos * sy
    theta[:, :, 2] = uniform(-0.1, 0.1).unsqueeze(1).expand(n, 2) * torch.tensor(
        [1.0, -1.0]
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    choice = torch.rand(n, generator=generator).view(n, 1, 1, 1)
    # At 32 px a 2x2 max is a half-pixel change of pen width, as 3x3 would be at 64 px.
    thick = F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2, 1)
    thin = -F.max_pool2d(F.pad(-x, (0, 1, 0, 1)), 2, 1)
    x = torch.where(choice < 0.25, thick, x)
    keep_thin = thin.sum(dim=(1, 2, 3), keepdim=True) > 0.4 * x.sum(
        dim=(1, 2, 3), keepdim=True
    )
    x = torch.where((choice > 0.85) & keep_thin, thin, x)
    blur = torch.rand(n, generator=generator).view(n, 1, 1, 1) < 0.3
    soft = F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, 1)
    x = torch.where(blur, soft, x)
    x = x * uniform(0.6, 1.0).view(n, 1, 1, 1)
    x = x + 0.03 * torch.rand(n, 1, 1, 1, generator=generator) * torch.randn(
        x.shape, generator=generator
    )
    return x.clamp(0.0, 1.0)
