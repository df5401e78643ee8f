# SPDX-License-Identifier: AGPL-3.0-or-later
"""Synthetic HME training images: LaTeX typeset in handwriting fonts, then warped.

crohme-dev has about two writings per expression, so the contrastive term mostly sees
one writer's image paired with its own augmentation.  Typesetting each training
expression again in other hands (matplotlib's mathtext with a handwriting font for
letters, digits and operators, Computer Modern for the rest) gives it partners in other
hands; short exam-style answers (``2x+3`` against ``3x+2``) teach symbol order, which
symbol presence alone does not see.  A smooth random displacement field bends the
typeset strokes so that no two renders are the same shape.

Fonts are an argument (:mod:`.fonts`): training uses Debian's handwriting fonts, never
Plom's own, which the demo uses as its students' hands.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

#: CROHME spellings mathtext does not know, and what it should draw instead.
_MATHTEXT_SPELLING = {r"\lt": "<", r"\gt": ">", r"\limits": "", r"\mbox": ""}
_COMMAND = re.compile(r"\\[A-Za-z]+")


def to_mathtext(latex: str) -> str:
    """A CROHME LaTeX string as mathtext source (``$...$``)."""
    text = _COMMAND.sub(lambda m: _MATHTEXT_SPELLING.get(m[0], m[0]), latex)
    return f"${text}$"


def exam_answers(count: int, rng: np.random.Generator) -> list[str]:
    """``count`` distinct short answers of the kind an exam asks for, as LaTeX.

    Same digits in another order or with another operator are different answers, so
    the net must learn where each symbol sits, not just which symbols occur.
    """
    templates = (
        "{a} x + {b}",
        "{a} x - {b}",
        "x = {b}",
        "x = - {a}",
        "{a} ( x - {b} )",
        "\\frac{{{a}}}{{{b}}}",
        "\\frac{{x}}{{{a}}} + {b}",
        "x ^ {{{a}}} + {b}",
        "{a} y + {b}",
        "( x + {a} ) ( x - {b} )",
        "{a} \\sqrt{{{b}}}",
        "y = {a} x + {b}",
    )
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        a, b = int(rng.integers(2, 10)), int(rng.integers(1, 100))
        text = templates[int(rng.integers(len(templates)))].format(a=a, b=b)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


#: Tokens never typeset alone: they need an argument, or they are punctuation that no
#: answer consists of (scaled to the canvas, a lone dot becomes a large disc).
_NEVER_ALONE = {
    *(r"\frac", r"\sqrt", r"\overline", r"\hat", r"\vec", r"\bar"),
    *(".", ",", "!", "'", "-", "/", "|", "(", ")", "[", "]", r"\{", r"\}"),
    *(r"\cdot", r"\cdots", r"\ldots", r"\dots", r"\prime"),
}


def lone_symbols(latexes: list[str], min_images: int) -> list[str]:
    r"""The net's symbol classes worth typesetting alone, each as its own answer.

    One-symbol answers (``a`` against ``\alpha``) are decided by one class map, and
    the real data holds few of them; typeset alone, every class gets some.  The
    classes are the vocabulary's (``hme_tokens.build_vocabulary``), each under one
    spelling mathtext can draw (``\to`` and ``\rightarrow`` as two answers would be
    pushed apart).
    """
    from .hme_tokens import ALIASES, build_vocabulary, raw_tokens

    classes = set(build_vocabulary(latexes, min_images))
    spelling: dict[str, str] = {}
    for token in sorted({t for latex in latexes for t in raw_tokens(latex)}):
        name = ALIASES.get(token, token)
        if name in classes and token not in _NEVER_ALONE:
            spelling.setdefault(name, token)
    return sorted(spelling.values())


def elastic(gray: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Bend an image by a smooth random displacement field (``amount`` in pixels)."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    h, w = gray.shape
    sigma = max(h, 12) / 4
    dy = gaussian_filter(rng.standard_normal((h, w)), sigma)
    dx = gaussian_filter(rng.standard_normal((h, w)), sigma)
    scale = amount / max(np.abs(dy).max(), np.abs(dx).max(), 1e-6)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = [rows + dy * scale, cols + dx * scale]
    return map_coordinates(gray, coords, order=1, mode="constant", cval=255)


class Typesetter:
    """Draws LaTeX in one of several handwriting fonts (dark ink on white, uint8)."""

    def __init__(self, fonts: list[Path]) -> None:
        """Register ``fonts`` with matplotlib (imported here: training only)."""
        import matplotlib
        from matplotlib import font_manager

        matplotlib.use("agg")
        from matplotlib.mathtext import MathTextParser

        if not fonts:
            raise ValueError("no handwriting fonts to typeset with")
        self.names = []
        for path in fonts:
            font_manager.fontManager.addfont(str(path))
            self.names.append(font_manager.FontProperties(fname=str(path)).get_name())
        self._parser = MathTextParser("agg")
        # Every fallback glyph would log a warning: thousands per training run.
        logging.getLogger("matplotlib.mathtext").setLevel(logging.ERROR)
        logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

    def draw(self, latex: str, font: int, rng: np.random.Generator) -> np.ndarray:
        """One render of ``latex`` in font number ``font``; ValueError if it won't parse."""
        from matplotlib import rc_context
        from matplotlib.font_manager import FontProperties

        name = self.names[font % len(self.names)]
        style = {
            "mathtext.fontset": "custom",
            "mathtext.rm": name,
            "mathtext.it": name,
            "mathtext.bf": name,
            "mathtext.sf": name,
            "mathtext.fallback": "cm",
        }
        # The parse cache is keyed by text and size, not by the font rc settings.
        self._parser._parse_cached.cache_clear()
        dpi = float(rng.uniform(90, 150))
        with rc_context(style):
            parsed = self._parser.parse(
                to_mathtext(latex), dpi=dpi, prop=FontProperties(size=20)
            )
        ink = np.asarray(parsed.image, dtype=np.uint8)
        if ink.size == 0 or ink.max() == 0:
            raise ValueError(f"nothing drawn for {latex!r}")
        gray = 255 - np.pad(ink, 8)
        return elastic(gray, rng, amount=float(rng.uniform(0.5, 2.5)))


def render_synthetic(
    latex: list[str],
    fonts: list[Path],
    copies: int,
    canvas: tuple[int, int],
    seed: int,
    dot_reach: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``copies`` renders of each expression, in distinct random fonts.

    Each render is prepared as a scanned crop is, keeping specks within ``dot_reach``.

    Returns:
        Clean canvases, scan-simulated canvases of the same renders (the harness's
        ``scanify`` + template removal) and the LaTeX of each row; expressions that
        mathtext cannot typeset are left out.
    """
    from ..ml.preprocess import prepare
    from .hme_data import ScanSimulation, to_canvas

    rng = np.random.default_rng([seed, 47])
    simulation = ScanSimulation(dot_reach)
    typesetter = Typesetter(fonts)
    clean, scanned, rows = [], [], []
    for text in latex:
        picks = rng.permutation(len(fonts))[:copies]
        for font in picks:
            try:
                gray = typesetter.draw(text, int(font), rng)
            except ValueError:  # also mathtext's ParseException, a ValueError
                break
            clean.append(to_canvas(prepare(gray, dot_reach=dot_reach), canvas))
            scanned.append(to_canvas(simulation.prepare(gray, rng), canvas))
            rows.append(text)
    if not rows:
        raise ValueError("no expression could be typeset")
    return np.stack(clean), np.stack(scanned), rows
