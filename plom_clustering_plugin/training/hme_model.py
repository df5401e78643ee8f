# SPDX-License-Identifier: AGPL-3.0-or-later
"""The HSC-style symbol network: class activation maps and the features pooled from them.

A small fully convolutional net (stride-2 stem, output at 1/8) maps an ink canvas to one
logit map per symbol class, at two input scales (full and half size, shared weights, as
in Nguyen et al. 2020) or three (plus quarter size: the paper's best, Table 6).  Training reads symbol *presence* from the maps (mean of global
max and attentive pooling); clustering reads the sigmoid maps pooled over the whole image
and over a grid of regions, which keeps where each symbol is.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Grid of regions (rows, columns) pooled for the spatial part of the embedding.
GRID = (3, 7)
#: Starting bias of the counting head's density logits (sigmoid about 3e-4 per cell).
COUNT_BIAS = -8.0


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False
        ),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _bins(size: int, parts: int) -> list[tuple[int, int]]:
    """Overlapping bins like adaptive pooling, fixed at export time (no ONNX op)."""
    size = int(size)  # a plain int: traced tensor "//" exports as truncating Div
    return [
        (
            i * size // parts,
            max(((i + 1) * size + parts - 1) // parts, i * size // parts + 1),
        )
        for i in range(parts)
    ]


def grid_max(maps: torch.Tensor, grid: tuple[int, int] = GRID) -> torch.Tensor:
    """Max of ``(N, C, H, W)`` maps in each grid cell: ``(N, C * rows * cols)``.

    Same bins as adaptive max pooling, which trains faster but does not export to ONNX
    when the map size is not a multiple of the grid.
    """
    if not torch.onnx.is_in_onnx_export():
        return F.adaptive_max_pool2d(maps, grid).flatten(1)
    rows = _bins(maps.shape[2], grid[0])
    cols = _bins(maps.shape[3], grid[1])
    cells = [
        maps[:, :, r0:r1, c0:c1].amax(dim=(2, 3)) for r0, r1 in rows for c0, c1 in cols
    ]
    return torch.stack(cells, dim=2).flatten(1)


class SymbolNet(nn.Module):
    """Ink canvas ``(N, 1, H, W)`` -> symbol logit maps ``(N, C, H/8, W/8)``."""

    def __init__(self, classes: int, width: int = 16, deeper: int = 0) -> None:
        """Build the trunk; ``width`` scales every stage's channels.

        Few channels at high resolution: on 2 CPU cores the early layers dominate, and a
        lean trunk trained twice as fast as a uniform one for the same symbol capacity.
        ``deeper`` adds that many 3x3 layers at 1/8, where a layer costs least: depth
        and view for symbols that fill the canvas (one-symbol answers).
        """
        super().__init__()
        w = width
        self.trunk = nn.Sequential(
            _conv(1, w, 2),  # 1/2
            _conv(w, 2 * w, 2),  # 1/4
            _conv(2 * w, 3 * w),
            _conv(3 * w, 6 * w, 2),  # 1/8
            _conv(6 * w, 6 * w),
            *[_conv(6 * w, 6 * w) for _ in range(deeper)],
        )
        self.context = _conv(6 * w, 6 * w, dilation=2)  # wider view: fractions, roots
        self.head = nn.Sequential(
            nn.Conv2d(12 * w, 12 * w, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.1),
            nn.Conv2d(12 * w, classes, 1),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last two levels side by side (local and wider context, per HSC)."""
        local = self.trunk(x)
        return torch.cat([local, self.context(local)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logit maps; the head sees :meth:`features`."""
        return self.head(self.features(x))


def presence_logits(maps: torch.Tensor) -> torch.Tensor:
    """Mean of global max and attentive (sigmoid-weighted) pooling of logit maps."""
    flat = maps.float().flatten(2)
    weights = torch.sigmoid(flat)
    attentive = (weights * flat).sum(2) / weights.sum(2).clamp_min(1e-6)
    return 0.5 * (flat.amax(2) + attentive)


class HmeNet(nn.Module):
    """Two-scale symbol maps, presence logits and the clustering embedding."""

    def __init__(
        self,
        classes: int,
        width: int = 16,
        grid_weight: float = 1.0,
        deeper: int = 0,
        input_scales: int = 2,
        counting: bool = False,
        count_weight: float = 0.0,
    ):
        """Set the class count, trunk width and depth, the grid part's weight.

        ``input_scales`` 2 reads the canvas at full and half size, 3 also at quarter
        size, where a symbol that fills the canvas fits the net's view.  ``counting``
        adds a head of density maps whose sums count each symbol (trained on the
        counts of the LaTeX tokens); ``count_weight`` > 0 appends those counts to the
        embedding as a third level, which no layout changes.
        """
        super().__init__()
        if input_scales not in (2, 3):
            raise ValueError(f"input_scales is 2 or 3, not {input_scales}")
        if count_weight > 0 and not counting:
            raise ValueError("count_weight needs the counting head (counting=True)")
        self.symbols = SymbolNet(classes, width, deeper)
        self.grid_weight = grid_weight
        self.input_scales = input_scales
        self.count_weight = count_weight
        self.counter = None
        if counting:
            self.counter = nn.Conv2d(12 * width, classes, 1)
            # Near-empty maps at the start: a sum over hundreds of cells at
            # sigmoid(0) would count ~300 of every symbol and swamp the other losses.
            nn.init.constant_(self.counter.bias, COUNT_BIAS)

    def read(
        self, x: torch.Tensor, counting: bool = False
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per input size (full, half, quarter): logit maps, and counts if asked.

        The counts ``(N, C)`` are the counting head's density maps summed; none come
        back from a net without the head.
        """
        maps, counted = [], []
        for scale in range(self.input_scales):
            if scale:
                x = F.avg_pool2d(x, 2)
            if not (counting and self.counter is not None):
                maps.append(self.symbols(x))
                continue
            features = self.symbols.features(x)
            maps.append(self.symbols.head(features))
            density = torch.sigmoid(self.counter(features).float())
            counted.append(density.sum(dim=(2, 3)))
        return maps, counted

    def scales(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logit maps at full, half (and quarter) input size: small to big symbols."""
        return self.read(x)[0]

    def outputs(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Presence logits, the embedding and each size's symbol counts ``(N, C)``."""
        maps, counts = self.read(x, counting=True)
        logits = torch.stack([presence_logits(m) for m in maps]).amax(0)
        return logits, self.embed(maps, counts), counts

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Presence logits ``(N, C)`` and the L2-normalised embedding ``(N, D)``."""
        logits, embedding, _ = self.outputs(x)
        return logits, embedding

    def embed(
        self, maps: list[torch.Tensor], counts: list[torch.Tensor] = ()
    ) -> torch.Tensor:
        """Sigmoid maps pooled 1x1 and over the grid, max over scales, L2 per level.

        With ``count_weight`` > 0, ``log1p`` of the counts (mean over sizes) follows.
        """
        probs = [torch.sigmoid(m.float()) for m in maps]
        whole = torch.stack([p.amax(dim=(2, 3)) for p in probs]).amax(0)
        cells = torch.stack([grid_max(p) for p in probs]).amax(0)
        levels = [
            F.normalize(whole, dim=1),
            F.normalize(cells, dim=1) * self.grid_weight,
        ]
        if self.count_weight > 0:
            mean = torch.stack(list(counts)).mean(0)
            levels.append(F.normalize(torch.log1p(mean), dim=1) * self.count_weight)
        return F.normalize(torch.cat(levels, dim=1), dim=1)


class EmbeddingOnly(nn.Module):
    """The exported graph: canvas in, embedding out (inference only)."""

    def __init__(self, net: HmeNet) -> None:
        """Wrap a trained net."""
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, H, W)`` ink canvases -> ``(N, D)`` unit rows."""
        maps, counts = self.net.read(x, counting=self.net.count_weight > 0)
        return self.net.embed(maps, counts)
