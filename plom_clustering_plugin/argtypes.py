# SPDX-License-Identifier: AGPL-3.0-or-later
"""Argument types shared by the command-line tools (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from fractions import Fraction


def whole_number(minimum: int) -> Callable[[str], int]:
    """A type accepting whole numbers ``>= minimum``, with a message naming the rule."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be {minimum} or more")
        return value

    return parse


def fraction(text: str) -> float:
    """A number in ``[0, 1]``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be between 0 and 1")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number above 0")
    return value


def exact_fraction(text: str) -> Fraction:
    """A ratio strictly between 0 and 1, kept exact (``2/3``, not 0.666...)."""
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a fraction such as 2/3"
        ) from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be between 0 and 1")
    return value
