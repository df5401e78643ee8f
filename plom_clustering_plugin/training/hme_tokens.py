# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Symbol classes of a handwritten expression, read from its LaTeX.

The HME model is trained on symbol *presence*: which symbols an image contains, not
where.  A regex splits the LaTeX into ``\command``, single characters and braces;
aliases are merged (``\lt`` is ``<``) and pure layout tokens (braces, ``^``, ``_``,
``\left``) are dropped because they have no glyph of their own; ``\frac`` stays (its
bar is ink).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[^\s]")

#: Spellings of one glyph, mapped to one class name.
ALIASES = {
    "\\lt": "<",
    "\\gt": ">",
    "\\to": "\\rightarrow",
    "\\ge": "\\geq",
    "\\le": "\\leq",
    "\\ne": "\\neq",
    "\\{": "brace{",
    "\\}": "brace}",
    "\\lbrace": "brace{",
    "\\rbrace": "brace}",
    "\\lbrack": "[",
    "\\rbrack": "]",
    "\\cdots": "\\ldots",
    "\\dots": "\\ldots",
    "\\prime": "'",
    "\\vert": "|",
    "\\mid": "|",
    "\\gets": "\\leftarrow",
    "\\ast": "*",
}
#: Tokens that only arrange other symbols (no ink of their own).
STRUCTURE = {
    "{",
    "}",
    "^",
    "_",
    "\\left",
    "\\Bigg",
    "\\bigg",
    "\\Big",
    "\\big",
    "\\right",
    "\\limits",
    "\\mbox",
    "\\mathrm",
    "\\displaystyle",
    "\\!",
    "\\,",
    "\\;",
    "\\:",
    "\\ ",
    "&",
    "~",
}
#: A class needs this many training images, or it is ignored.
MIN_IMAGES = 3


def raw_tokens(latex: str) -> list[str]:
    """LaTeX's tokens as written (no aliases merged, nothing dropped)."""
    return _TOKEN.findall(latex)


def tokens(latex: str) -> list[str]:
    """Split LaTeX into glyph tokens (aliases merged, layout tokens dropped)."""
    out = []
    for raw in raw_tokens(latex):
        token = ALIASES.get(raw, raw)  # escaped braces become "brace{": real glyphs
        if token in STRUCTURE:
            continue
        out.append(token)
    return out


def symbol_set(latex: str) -> set[str]:
    """The distinct glyph classes of one expression."""
    return set(tokens(latex))


def build_vocabulary(latexes: Iterable[str], min_images: int = MIN_IMAGES) -> list[str]:
    """Classes seen in at least ``min_images`` expressions' images, sorted."""
    counts = Counter()
    for latex in latexes:
        counts.update(symbol_set(latex))
    return sorted(c for c, n in counts.items() if n >= min_images)


def multi_hot(latex: str, vocabulary: Sequence[str]) -> list[int]:
    """Indices of the vocabulary classes present in ``latex``."""
    return list(symbol_counts(latex, vocabulary))


def symbol_counts(latex: str, vocabulary: Sequence[str]) -> dict[int, int]:
    """How many times each vocabulary class is written in ``latex``, by index."""
    index = {c: i for i, c in enumerate(vocabulary)}
    found = Counter(index[t] for t in tokens(latex) if t in index)
    return dict(sorted(found.items()))


def canonical(latex: str) -> str:
    """The expression identity used to group images: tokens joined by spaces.

    It ignores spacing differences only (``x^{2}`` and ``x ^ { 2 }`` agree); the
    structure tokens are kept, because they change the expression.
    """
    return " ".join(raw_tokens(latex))
