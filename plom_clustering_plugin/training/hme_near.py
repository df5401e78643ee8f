# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Near misses: a training expression changed by one symbol, as an answer of its own.

At the true k the clusterer's errors are answers that differ from a neighbour by one
symbol (``x = 1`` against ``f ( x ) = 1``, ``u`` against ``\{ u \}``, ``a`` against
``\alpha``): two writings of one long expression differ more than they do.  A near
miss is a training expression with one symbol replaced (often by a look-alike),
inserted, deleted, swapped with its neighbour, or the whole wrapped (``f ( ... )``);
typeset in handwriting fonts it is a new expression whose nearest relative is known.
:func:`family_order` puts one row of each member of a family (the expression and its
near misses) next to each other, so that they share a batch and the contrastive loss
has to tell them apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .hme_tokens import STRUCTURE, canonical, raw_tokens

#: Symbols a writer's hand makes alike (each maps to the ones it is taken for).
LOOK_ALIKES = {
    "a": ("\\alpha", "o", "d"),
    "\\alpha": ("a", "\\infty"),
    "o": ("0", "a", "\\theta"),
    "0": ("o", "\\theta", "6"),
    "\\theta": ("0", "o", "\\alpha"),
    "1": ("l", "7", "|"),
    "l": ("1",),
    "2": ("z", "3"),
    "z": ("2",),
    "5": ("s", "S"),
    "s": ("5",),
    "b": ("6", "h"),
    "6": ("b", "0"),
    "g": ("9", "q"),
    "9": ("g", "q"),
    "q": ("9", "g"),
    "u": ("v", "n"),
    "v": ("u", "\\nu"),
    "n": ("u", "h"),
    "x": ("\\times", "y", "X"),
    "\\times": ("x", "+"),
    "+": ("t", "\\times"),
    "t": ("+",),
    "y": ("g", "x"),
    "p": ("P", "\\rho"),
    "P": ("p",),
    "c": ("C", "("),
    "C": ("c",),
    "k": ("K",),
    "-": ("=",),
    "=": ("-",),
    "<": ("\\leq",),
    ">": ("\\geq",),
}
#: Symbols that may be inserted, or stand in when a symbol has no look-alike.
FILLERS = tuple("abcdxyzn0123456789+-=()") + ("\\alpha", "\\pi", "\\theta")
#: Wrappers of a whole expression: (before, after).
WRAPS = (("f (", ")"), ("\\{", "\\}"), ("(", ")"), ("-", ""), ("", "= 0"), ("2", ""))
#: Kinds of edit, drawn with equal chance (a kind that does not apply is redrawn).
EDITS = ("replace", "insert", "delete", "swap", "wrap")


#: Tokens that take the next token as theirs (``\frac 1 2``, ``\left (``).
_TAKES_NEXT = ("\\frac", "\\sqrt", "\\left", "\\right")


def _atoms(tokens: Sequence[str]) -> list[int]:
    """Positions of the tokens that are one symbol of ink and take no argument."""
    return [
        i
        for i, t in enumerate(tokens)
        if t not in STRUCTURE
        and t not in _TAKES_NEXT
        and (not t.startswith("\\") or t[1:].isalpha() or t in ("\\{", "\\}"))
        and (i == 0 or tokens[i - 1] not in _TAKES_NEXT)
    ]


def edit(latex: str, kind: str, rng: np.random.Generator) -> str | None:
    """``latex`` changed by one edit of ``kind``, or None where it does not apply."""
    tokens = raw_tokens(latex)
    atoms = _atoms(tokens)
    if kind == "wrap":
        before, after = WRAPS[int(rng.integers(len(WRAPS)))]
        return " ".join(p for p in (before, " ".join(tokens), after) if p)
    if not atoms:
        return None
    at = atoms[int(rng.integers(len(atoms)))]
    if kind == "replace":
        choices = LOOK_ALIKES.get(tokens[at]) or FILLERS
        new = choices[int(rng.integers(len(choices)))]
        if new == tokens[at]:
            return None
        tokens[at] = new
    elif kind == "insert":
        tokens.insert(
            at + int(rng.integers(2)), FILLERS[int(rng.integers(len(FILLERS)))]
        )
    elif kind == "delete":
        # Never empty a group ("x ^ { 2 }" -> "x ^ { }") or leave "^" without argument.
        alone = (
            0 < at < len(tokens) - 1 and tokens[at - 1] == "{" and tokens[at + 1] == "}"
        )
        if len(atoms) < 2 or alone or (at and tokens[at - 1] in ("^", "_")):
            return None
        del tokens[at]
    elif kind == "swap":
        if at + 1 not in atoms or tokens[at] == tokens[at + 1]:
            return None
        tokens[at], tokens[at + 1] = tokens[at + 1], tokens[at]
    else:
        raise ValueError(f"unknown edit {kind!r}")
    return " ".join(tokens)


def near_misses(
    latexes: Sequence[str],
    count: int,
    rng: np.random.Generator,
    exclude: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """``count`` distinct (expression, near miss) pairs drawn from ``latexes``.

    A near miss is never one of ``latexes`` or ``exclude`` (under
    :func:`.hme_tokens.canonical`), so no expression trained on under another
    spelling is taught to be far from itself.
    """
    bases = sorted(set(latexes))
    known = {canonical(t) for t in [*bases, *exclude]}
    pairs: list[tuple[str, str]] = []
    tries = 0
    while len(pairs) < count and bases and tries < 50 * count:
        tries += 1
        base = bases[int(rng.integers(len(bases)))]
        variant = edit(base, EDITS[int(rng.integers(len(EDITS)))], rng)
        if variant is None or canonical(variant) in known:
            continue
        known.add(canonical(variant))
        pairs.append((base, variant))
    return pairs


def families(latex: Sequence[str], pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Family index of every row: an expression and its near misses share one, else -1.

    Rows are matched by :func:`.hme_tokens.canonical` (``x=1`` is ``x = 1``).
    """
    index_of_base: dict[str, int] = {}
    family: dict[str, int] = {}
    for base, variant in pairs:
        index = index_of_base.setdefault(canonical(base), len(index_of_base))
        family[canonical(base)] = family[canonical(variant)] = index
    return np.array([family.get(canonical(t), -1) for t in latex], dtype=np.int64)


def family_order(
    anchors: np.ndarray,
    group: np.ndarray,
    family: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """``anchors`` shuffled, with one anchor of each family member brought together.

    Args:
        anchors: rows that open a pair this epoch (may repeat rows).
        group: expression index of every row.
        family: family index of every row (an expression and its near misses share
            one), -1 for rows of no family.
        rng: the epoch's generator.

    The first anchor (in shuffled order) of each expression of a family moves next to
    the family's first such anchor; every other anchor keeps its shuffled place.
    """
    order = rng.permutation(anchors)
    key = np.arange(len(order), dtype=np.float64)
    head_of_family: dict[int, int] = {}
    seen_groups: set[int] = set()
    for position, row in enumerate(order):
        fam, grp = int(family[row]), int(group[row])
        if fam < 0 or grp in seen_groups:
            continue
        seen_groups.add(grp)
        first = head_of_family.setdefault(fam, position)
        # Members after the first sort right behind it, in the order met.
        key[position] = first + (position - first) / (len(order) + 1)
    return order[np.argsort(key, kind="stable")]
