# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Evaluate clustering methods on a folder of labelled handwriting.

Usage::

    python -m plom_clustering_plugin.evaluate --kind hme --data DIR \
        [--protocol all|top50|exam|many|every ...] [--method NAME ...] [--scanify] \
        [--json OUT] [--seed N] [--seeds N] [--limit-questions N] [--max-answers N]

``DIR`` holds ``labels.csv`` (columns ``image`` and ``latex`` or ``label``) and the
images.  See ``docs/evaluation.md`` for the protocols and metrics.  ``--seeds N`` runs N
seeds, from ``--seed`` on, and prints their mean, with the spread (standard
deviation over seeds) beside purity, ARI and marking cost.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from .argtypes import whole_number
from .evaluation.datasets import load_dataset
from .evaluation.methods import DEFAULT_METHODS, METHODS
from .evaluation.repeats import combine
from .evaluation.report import format_tables, write_json
from .evaluation.runner import DEFAULT_PROTOCOLS, PROTOCOLS, RunConfig, evaluate

COMMAND = ("python", "-m", "plom_clustering_plugin.evaluate")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = argparse.ArgumentParser(
        prog=" ".join(COMMAND), description=__doc__.split("\n")[0]
    )
    parser.add_argument("--kind", required=True, choices=("hme", "mcq"))
    parser.add_argument("--data", required=True, help="folder holding labels.csv")
    parser.add_argument(
        "--protocol",
        nargs="+",
        default=list(DEFAULT_PROTOCOLS),
        choices=(*PROTOCOLS, "every"),
        help=f"one or more; default: {' '.join(DEFAULT_PROTOCOLS)};"
        f" 'every' = {' '.join(PROTOCOLS)}",
    )
    parser.add_argument(
        "--method",
        nargs="+",
        default=list(DEFAULT_METHODS),
        help=f"NAME or NAME@EMBEDDER (EMBEDDER: a name, MODEL:VERSION or"
        f" PATH.entry.json); names: {' '.join(METHODS)};"
        f" default: {' '.join(DEFAULT_METHODS)}",
    )
    parser.add_argument(
        "--scanify", action="store_true", help="make crops look scanned"
    )
    parser.add_argument("--json", help="also write the full result here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds",
        type=whole_number(1),
        default=1,
        help="repeat with this many seeds from --seed on; report mean and spread",
    )
    parser.add_argument(
        "--limit-questions",
        type=int,
        help="only the first N questions of exam and many",
    )
    parser.add_argument(
        "--max-answers",
        type=int,
        help="stratified sample of all/top50 down to about N answers",
    )
    args = parser.parse_args(argv)
    if "every" in args.protocol:
        args.protocol = list(PROTOCOLS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation, print the tables, optionally write JSON; 0 on success."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        dataset = load_dataset(args.data, args.kind)
        runs = [
            evaluate(
                dataset,
                RunConfig(
                    protocols=list(dict.fromkeys(args.protocol)),
                    methods=list(dict.fromkeys(args.method)),
                    scanify=args.scanify,
                    seed=seed,
                    limit_questions=args.limit_questions,
                    max_answers=args.max_answers,
                    extra={"command": shlex.join([*COMMAND, *argv])},
                ),
            )
            for seed in range(args.seed, args.seed + args.seeds)
        ]
        run = runs[0] if len(runs) == 1 else combine(runs)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_tables(run))
    if args.json:
        write_json(run, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
