# SPDX-License-Identifier: AGPL-3.0-or-later
"""Synthetic "handwriting" for the demo and the tests, from fonts the project may ship.

Text is drawn with a handwriting font shipped in Plom's wheel (``plom/create/fonts``) and
distorted (slant, scale, rotation, stroke width) so no two writings look alike.  The PNG
has a transparent background so that, pasted onto a page, it covers nothing printed.
"""

from __future__ import annotations

import io
import random
from importlib import resources
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

#: Plom's shipped handwriting fonts (file names inside ``plom/create/fonts``).
PLOM_FONTS = (
    "ejx_handwriting.ttf",
    "adr_handwriting.ttf",
    "bt_handwriting.ttf",
    "ld_handwriting.ttf",
    "nh_handwriting.ttf",
    "pdl_handwriting.ttf",
)


def font_path(name: str) -> Path:
    """Absolute path of one of Plom's handwriting fonts."""
    return Path(str(resources.files("plom.create") / "fonts" / name))


def render_text(
    text: str,
    *,
    font: str = PLOM_FONTS[0],
    size: int = 72,
    seed: int | None = None,
    vary: bool = True,
) -> bytes:
    """Render ``text`` as dark ink on a transparent background, as PNG bytes.

    Args:
        text: what the "student" writes.
        font: a file name from :data:`PLOM_FONTS` or a path to any TrueType font.
        size: nominal font size in pixels.
        seed: with ``vary``, makes the distortion reproducible.
        vary: apply a random slant, rotation, scale and stroke width.
    """
    rng = random.Random(seed)
    path = font_path(font) if "/" not in font else Path(font)
    scale = rng.uniform(0.85, 1.15) if vary else 1.0
    ttf = ImageFont.truetype(str(path), max(8, round(size * scale)))
    left, top, right, bottom = ttf.getbbox(text)
    pad = size // 2
    mask = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(mask).text((pad - left, pad - top), text, font=ttf, fill=255)
    if vary:
        slant = rng.uniform(-0.25, 0.25)
        mask = mask.transform(
            mask.size, Image.AFFINE, (1, slant, -slant * mask.size[1] / 2, 0, 1, 0)
        )
        mask = mask.rotate(rng.uniform(-4, 4), resample=Image.BILINEAR, expand=True)
        width = rng.choice((0, 0, 1, 2))
        if width:
            mask = mask.filter(ImageFilter.MaxFilter(2 * width + 1))
    bbox = mask.getbbox()
    if bbox:
        mask = mask.crop(bbox)
    ink = Image.new("RGBA", mask.size, (20, 20, 60, 0))
    ink.putalpha(mask)
    out = io.BytesIO()
    ink.save(out, format="PNG")
    return out.getvalue()
