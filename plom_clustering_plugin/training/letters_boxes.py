# SPDX-License-Identifier: AGPL-3.0-or-later
"""Training samples the way inference sees them: a letter inside an answer box.

A letter is drawn into a box-sized page with, at random, a crossed-out first attempt, a
circle around it, a stray dot and a leftover piece of printed line; the page may be
degraded like a scan.  It then goes through ``preprocess.prepare`` and
``letters.find_marks`` exactly as at run time.  The mark that is mostly the letter is a
training sample of its class; the other candidates are "not a letter" samples.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ..ml.letters import LETTERS, find_marks, letter_canvas
from ..ml.preprocess import prepare
from .letters_data import Letter, render_strokes

#: Class index of "not a letter" (crossed-out attempts, circles, lines, scribbles).
REJECT = len(LETTERS)
#: A candidate holding this much of the letter's ink is the letter's sample (clutter
#: touching the letter, such as a tight circle, stays in it as it would at run time);
#: one holding at most ``CLUTTER_SHARE`` of it is a "not a letter" sample.
TARGET_SHARE = 0.6
CLUTTER_SHARE = 0.1


@dataclass(frozen=True)
class Context:
    """How likely each kind of clutter is in one box.

    Attributes:
        crossed: a crossed-out first attempt beside the answer.
        circle: a circle drawn around the answer.
        dot: a stray dot.
        line: a leftover piece of printed line.
        scan: scan degradation (paper tone, blur, noise, JPEG).
    """

    crossed: float = 0.2
    circle: float = 0.1
    dot: float = 0.25
    line: float = 0.3
    scan: float = 0.6


#: Clean letters in an empty box (validation without clutter).
CLEAN = Context(0.0, 0.0, 0.0, 0.0, 0.0)
TRAIN = Context()


def _paste(page: np.ndarray, ink: np.ndarray, top: int, left: int) -> None:
    h = min(ink.shape[0], page.shape[0] - top)
    w = min(ink.shape[1], page.shape[1] - left)
    region = page[top : top + h, left : left + w]
    np.maximum(region, ink[:h, :w], out=region)


def _cross_out(ink: np.ndarray, pen: float, rng: np.random.Generator) -> np.ndarray:
    """Strike a letter through: an X, one to three lines, or a zigzag scribble."""
    h, w = ink.shape
    image = Image.fromarray((ink * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    width = max(1, round(pen))
    kind = rng.integers(3)
    if kind == 0:
        draw.line((0, 0, w - 1, h - 1), fill=255, width=width)
        draw.line((0, h - 1, w - 1, 0), fill=255, width=width)
    elif kind == 1:
        for _ in range(int(rng.integers(1, 4))):
            y0, y1 = rng.uniform(0.2, 0.8, 2) * h
            draw.line((0, y0, w - 1, y1), fill=255, width=width)
    else:
        xs = np.linspace(0, w - 1, int(rng.integers(5, 12)))
        ys = np.where(np.arange(len(xs)) % 2, 0.1 * h, 0.9 * h) + rng.normal(
            0, 2, len(xs)
        )
        draw.line(
            list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=255, width=width
        )
    return np.asarray(image, np.float32) / 255.0


def _degrade(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink to a scan-like grey uint8 page: paper tone, blur, noise, JPEG."""
    paper, dark = rng.uniform(0.85, 1.0), rng.uniform(0.03, 0.3)
    gray = paper * (1.0 - ink) + dark * ink
    gray = ndimage.gaussian_filter(gray, rng.uniform(0.3, 1.0))
    gray = gray + rng.normal(0.0, rng.uniform(0.005, 0.03), gray.shape)
    page = np.round(np.clip(gray, 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(page).save(buffer, format="JPEG", quality=int(rng.integers(35, 90)))
    buffer.seek(0)
    with Image.open(buffer) as img:
        return np.asarray(img.convert("L"), np.uint8)


def compose_box(
    letter: Letter,
    others: Sequence[Letter],
    context: Context,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one answer box.

    Args:
        letter: the answer.
        others: letters to draw a crossed-out attempt from.
        context: how likely each kind of clutter is.
        rng: the random source.

    Returns:
        The grey ``uint8`` page (255 = paper) and a mask of the answer's own ink.
    """
    height = int(rng.integers(90, 181))
    width = int(height * rng.uniform(1.0, 4.0))
    size = height * rng.uniform(0.35, 0.8)
    pen = rng.uniform(1.5, 6.0) * size / 60.0 + rng.uniform(0.0, 1.0)
    target = render_strokes(letter.strokes, size, pen, rng)
    target = target[: height - 8, : width - 8]
    page = np.zeros((height, width), np.float32)
    th, tw = target.shape
    top = int(rng.integers(4, height - th - 3))
    left = int(rng.integers(4, width - tw - 3))
    crossed = rng.random() < context.crossed and others
    if crossed:  # the first attempt goes on the wider free side
        other = others[int(rng.integers(len(others)))]
        attempt = _cross_out(render_strokes(other.strokes, size, pen, rng), pen, rng)
        attempt = attempt[: height - 8]
        gap = int(size * rng.uniform(0.3, 0.8))
        room_left, room_right = left - gap - 4, width - (left + tw + gap) - 4
        if max(room_left, room_right) >= attempt.shape[1]:
            a_top = int(rng.integers(4, max(5, height - attempt.shape[0] - 3)))
            if room_left >= room_right:
                a_left = int(rng.integers(4, room_left - attempt.shape[1] + 5))
            else:
                a_left = (
                    left
                    + tw
                    + gap
                    + int(rng.integers(0, room_right - attempt.shape[1] + 1))
                )
            _paste(page, attempt, a_top, a_left)
    if rng.random() < context.circle:
        margin = rng.uniform(4, 15)
        box = (left - margin, top - margin, left + tw + margin, top + th + margin)
        start = rng.uniform(0, 360)
        circle = Image.new("L", (width, height), 0)
        ImageDraw.Draw(circle).arc(
            box,
            start,
            start + rng.uniform(300, 380),
            fill=255,
            width=max(1, round(pen)),
        )
        _paste(page, np.asarray(circle, np.float32) / 255.0, 0, 0)
    if rng.random() < context.dot:
        radius = rng.uniform(2.0, 4.5)
        y, x = rng.uniform(radius, height - radius), rng.uniform(radius, width - radius)
        dot = Image.new("L", (width, height), 0)
        ImageDraw.Draw(dot).ellipse(
            (x - radius, y - radius, x + radius, y + radius), fill=255
        )
        _paste(page, np.asarray(dot, np.float32) / 255.0, 0, 0)
    if rng.random() < context.line:
        thick = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            y = int(
                rng.choice(
                    [rng.integers(0, 4), height - 1 - rng.integers(0, 4) - thick]
                )
            )
            x0 = int(rng.integers(0, width // 2))
            page[y : y + thick, x0 : x0 + int(width * rng.uniform(0.3, 1.0))] = 1.0
        else:
            x = int(
                rng.choice([rng.integers(0, 4), width - 1 - rng.integers(0, 4) - thick])
            )
            y0 = int(rng.integers(0, height // 2))
            page[y0 : y0 + int(height * rng.uniform(0.3, 1.0)), x : x + thick] = 1.0
    own = np.zeros_like(page)
    _paste(own, target, top, left)
    page = np.maximum(page, own) * rng.uniform(0.55, 1.0)  # pencil to marker
    if rng.random() < context.scan:
        gray = _degrade(page, rng)
    else:
        gray = np.round(255 * (1.0 - page)).astype(np.uint8)
    # Blur and pen changes spread ink past the drawn strokes: count nearby pixels too.
    return gray, ndimage.binary_dilation(own > 0.3, iterations=3)


def box_samples(
    letter: Letter,
    others: Sequence[Letter],
    context: Context,
    rng: np.random.Generator,
) -> list[tuple[np.ndarray, int]]:
    """The canvases one box yields: the letter's (if found) and "not a letter" ones."""
    gray, own = compose_box(letter, others, context, rng)
    crop = prepare(gray)
    if crop.is_blank:
        return []
    top, left, bottom, right = crop.bbox
    own = own[top:bottom, left:right] & (crop.ink > 0)
    total = max(int(own.sum()), 1)
    samples = []
    for mark in find_marks(crop.ink):
        t, l_, b, r = mark.bbox
        share = (own[t:b, l_:r] & (mark.ink > 0)).sum() / total
        if share >= TARGET_SHARE:
            label = letter.label
        elif share <= CLUTTER_SHARE:
            label = REJECT
        else:
            continue  # a piece of the letter: no clear label
        samples.append((to_uint8(letter_canvas(mark.ink)), label))
    return samples


def to_uint8(canvas: np.ndarray) -> np.ndarray:
    """Store a canvas compactly (0..255)."""
    return np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8)
