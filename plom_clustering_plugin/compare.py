# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Compare two evaluated methods question by question (paired differences).

Usage::

    python -m plom_clustering_plugin.compare BASE.json OTHER.json \
        [--base-method NAME] [--method NAME]

Both files come from ``evaluate --json`` run with the same ``--data``, ``--protocol``,
``--seed`` and ``--seeds`` (so the questions are the same); one file holding both
methods may be given twice.  Prints, per protocol, mode and metric, both means, the
mean difference (other minus base) and its standard error over the questions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .evaluation.paired import compare, format_rows, load_side


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m plom_clustering_plugin.compare",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("base", help="harness JSON of the method compared against")
    parser.add_argument("other", help="harness JSON of the method compared")
    parser.add_argument(
        "--base-method", help="the base file's method, if it has several"
    )
    parser.add_argument("--method", help="the other file's method, if it has several")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the paired table; 0 on success, 2 on unusable input."""
    args = parse_args(argv)
    try:
        base = load_side(args.base, args.base_method)
        other = load_side(args.other, args.method)
        rows = compare(base, other)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_rows(base, other, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
