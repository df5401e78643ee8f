# SPDX-License-Identifier: AGPL-3.0-or-later
"""Make a clean handwriting image look like an answer box cut from a scanned page.

The clean ink is cut to its bounding box, resized into a printed answer box, thickened
or thinned, slanted, moved, then the page gets paper tone, blur, noise, dust and JPEG
artefacts.  The printed box is drawn slightly misaligned, as after QR-code alignment,
and :func:`blank_reference` draws the same box cleanly: the crop of the blank reference
page that ``ml.preprocess.prepare`` uses to remove printed ink.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage


@dataclass(frozen=True)
class BoxLayout:
    """Geometry of a scanned answer crop, in pixels at about 200 dpi.

    Attributes:
        height: crop height.
        width: crop width.
        inset: distance from the crop edge to the printed box line.
        line: thickness of the printed line.
        margin: free space kept between the line and the handwriting.
        pen_changes: pen width changes in pixels (-1 thins, +n thickens) to draw from.
        pen_weights: how likely each change is.
    """

    height: int
    width: int
    inset: int = 10
    line: int = 2
    margin: int = 6
    pen_changes: tuple[int, ...] = (-1, 0, 1, 2)
    pen_weights: tuple[float, ...] = (0.15, 0.35, 0.3, 0.2)


#: A wide box for expressions, a square one for a single letter.  Expression images
#: come with 1-px strokes, thinner than any pen at 200 dpi (a 0.5 mm ballpoint is about
#: 4 px), so they are only ever thickened; letters have 2.5-px strokes.
LAYOUTS = {
    "hme": BoxLayout(
        192, 640, pen_changes=(0, 1, 2, 3), pen_weights=(0.2, 0.35, 0.3, 0.15)
    ),
    "mcq": BoxLayout(128, 128),
}

#: The handwriting fills this fraction of the largest size that fits the box.
FILL = (0.5, 0.95)
#: Slant of the handwriting itself, degrees.
SLANT_DEGREES = 4.0
#: Residual page skew after alignment, degrees, and misalignment, pixels.
SKEW_DEGREES = 0.15
SHIFT_PIXELS = 2


def _draw_box(layout: BoxLayout, dx: int = 0, dy: int = 0) -> np.ndarray:
    """Printed ink (1 = ink) of the box line, shifted by ``(dx, dy)``."""
    img = Image.new("L", (layout.width, layout.height), 0)
    left, top = layout.inset + dx, layout.inset + dy
    right = layout.width - 1 - layout.inset + dx
    bottom = layout.height - 1 - layout.inset + dy
    ImageDraw.Draw(img).rectangle(
        (left, top, right, bottom), outline=255, width=layout.line
    )
    return np.asarray(img, dtype=np.float32) / 255.0


def blank_reference(layout: BoxLayout) -> np.ndarray:
    """The crop of the blank reference page: white paper and the printed box."""
    return np.round(255.0 * (1.0 - _draw_box(layout))).astype(np.uint8)


def _ink_in_bbox(image: np.ndarray) -> np.ndarray:
    """Clean image (255 = white) to an ink map cut to its bounding box."""
    ink = 1.0 - np.asarray(image, dtype=np.float32) / 255.0
    rows = np.flatnonzero((ink > 0.2).any(axis=1))
    cols = np.flatnonzero((ink > 0.2).any(axis=0))
    if rows.size == 0:
        return np.zeros((1, 1), np.float32)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _change_pen(ink: np.ndarray, change: int) -> np.ndarray:
    """Thicken by ``change`` pixels, or thin by one unless that erases the strokes."""
    if change > 0:
        return ndimage.grey_dilation(ink, size=(change + 1, change + 1))
    if change < 0:
        thinner = ndimage.grey_erosion(ink, size=(2, 2))
        # 1-px strokes vanish when eroded: keep them, thin pens exist but not invisible.
        return thinner if thinner.sum() > 0.4 * ink.sum() else ink
    return ink


def _handwriting(image: np.ndarray, layout: BoxLayout, rng) -> np.ndarray:
    """The answer's ink, resized, re-penned, slanted and placed inside the box."""
    ink = _ink_in_bbox(image)
    room = layout.inset + layout.line + layout.margin
    inner_h, inner_w = layout.height - 2 * room, layout.width - 2 * room
    scale = min(inner_h / ink.shape[0], inner_w / ink.shape[1]) * rng.uniform(*FILL)
    new_h = max(1, round(ink.shape[0] * scale))
    new_w = max(1, round(ink.shape[1] * scale))
    ink = np.asarray(
        Image.fromarray(ink, mode="F").resize((new_w, new_h), Image.BILINEAR)
    )
    pen = rng.choice(layout.pen_changes, p=layout.pen_weights)
    ink = _change_pen(np.clip(ink, 0, 1), int(pen))
    ink = ndimage.rotate(ink, rng.uniform(-SLANT_DEGREES, SLANT_DEGREES), order=1)
    ink = ink[:inner_h, :inner_w]
    top = room + int(rng.integers(0, inner_h - ink.shape[0] + 1))
    left = room + int(rng.integers(0, inner_w - ink.shape[1] + 1))
    canvas = np.zeros((layout.height, layout.width), np.float32)
    canvas[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return np.clip(canvas, 0.0, 1.0) * rng.uniform(0.55, 1.0)  # pencil to marker


def _dust(shape: tuple[int, int], rng) -> np.ndarray:
    """A few dark specks of scanner dust."""
    dust = np.zeros(shape, np.float32)
    for _ in range(rng.poisson(1.5)):
        y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        dust[y : y + int(rng.integers(1, 3)), x : x + int(rng.integers(1, 3))] = 1.0
    return dust


def _jpeg(gray: np.ndarray, rng) -> np.ndarray:
    """Round-trip through JPEG at a low to medium quality."""
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="JPEG", quality=int(rng.integers(35, 86)))
    buffer.seek(0)
    with Image.open(buffer) as img:
        return np.asarray(img.convert("L"), dtype=np.uint8)


def scanify(image: np.ndarray, layout: BoxLayout, rng) -> np.ndarray:
    """Turn a clean handwriting image into a scanned-looking answer-box crop.

    Args:
        image: grey ``uint8`` image, black ink on white.
        layout: the crop and box geometry (see :data:`LAYOUTS`).
        rng: a ``numpy.random.Generator``; the same seed gives the same crop.

    Returns:
        A grey ``uint8`` crop of ``layout`` size, 255 = white paper.
    """
    shift = rng.integers(-SHIFT_PIXELS, SHIFT_PIXELS + 1, size=2)
    printed = _draw_box(layout, int(shift[0]), int(shift[1])) * rng.uniform(0.8, 1.0)
    ink = np.maximum(_handwriting(image, layout, rng), printed)
    ink = np.maximum(ink, _dust(ink.shape, rng))
    ink = ndimage.rotate(
        ink, rng.uniform(-SKEW_DEGREES, SKEW_DEGREES), order=1, reshape=False
    )
    paper, darkest = rng.uniform(0.86, 1.0), rng.uniform(0.03, 0.25)
    gray = paper * (1.0 - ink) + darkest * ink
    gray = ndimage.gaussian_filter(gray, rng.uniform(0.3, 0.9))
    gray = gray + rng.normal(0.0, rng.uniform(0.005, 0.03), gray.shape)
    return _jpeg(np.round(np.clip(gray, 0, 1) * 255).astype(np.uint8), rng)
