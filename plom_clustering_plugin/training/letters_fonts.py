# SPDX-License-Identifier: AGPL-3.0-or-later
"""Letters A-F / a-f drawn in handwriting fonts: hands that letters-train does not have.

letters-train's 174 writers all wrote on UNIPEN pen tablets; the fonts (:mod:`.fonts`)
add other people's print hands.  Each draw gets its own size, pen weight, rotation,
shear and aspect, then goes through ``prepare`` and ``letter_canvas`` as a scanned box
does at run time.  Fonts alone teach a poor classifier (prior-art §7.5: 83-92 %), so
they are an addition to the real letters, never a replacement.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Characters drawn and their class (``c`` is class ``C``: same shape).
CHARACTERS = {c: c for c in "ABCDEFabdef"} | {"c": "C"}


def draw_letter(char: str, font: Path, rng: np.random.Generator) -> np.ndarray:
    """One letter in ``font``, randomly varied: grey uint8, dark ink on white."""
    size = int(rng.integers(48, 110))
    ttf = ImageFont.truetype(str(font), size)
    pen = int(rng.choice([0, 0, 1, 2]))
    left, top, right, bottom = ttf.getbbox(char, stroke_width=pen)
    pad = size // 2
    image = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(image).text(
        (pad - left, pad - top),
        char,
        font=ttf,
        fill=255,
        stroke_width=pen,
        stroke_fill=255,
    )
    angle = np.deg2rad(rng.uniform(-10, 10))
    shear = rng.uniform(-0.25, 0.25)
    aspect = rng.uniform(0.88, 1.12)
    cos, sin = np.cos(angle), np.sin(angle)
    # Inverse map about the centre (PIL's AFFINE takes output -> input coefficients).
    a, b = cos / aspect, (-sin + shear) / aspect
    d, e = sin, cos
    cx, cy = image.width / 2, image.height / 2
    warped = image.transform(
        image.size,
        Image.AFFINE,
        (a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy),
        resample=Image.BILINEAR,
    )
    level = rng.uniform(0.6, 1.0)
    return (255 - np.asarray(warped, np.float32) * level).astype(np.uint8)


def font_letters(
    fonts: list[Path], variants: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``variants`` draws of each character in each font, as training canvases.

    Returns:
        ``uint8 (N, 64, 64)`` canvases and ``int64 (N,)`` class indices into
        ``ml.letters.LETTERS``; a font without a glyph (nothing drawn) is skipped, and
        so is the lower case of :data:`.fonts.CAPITALS_ONLY` fonts.
    """
    from ..ml.letters import LETTERS, letter_canvas
    from ..ml.preprocess import prepare
    from .fonts import CAPITALS_ONLY
    from .letters_boxes import to_uint8

    canvases, labels = [], []
    for number, font in enumerate(fonts):
        for char, label in CHARACTERS.items():
            if char.islower() and font.name in CAPITALS_ONLY:
                continue
            for variant in range(variants):
                rng = np.random.default_rng([seed, number, ord(char), variant])
                crop = prepare(draw_letter(char, font, rng))
                if crop.is_blank:
                    continue
                canvases.append(to_uint8(letter_canvas(crop.ink)))
                labels.append(LETTERS.index(label))
    if not canvases:
        raise ValueError("the fonts drew no letters")
    return np.stack(canvases), np.asarray(labels, np.int64)
