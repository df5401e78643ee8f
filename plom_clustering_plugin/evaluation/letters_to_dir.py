# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Write the letters pool (``images64.npz``) as an evaluation folder, split by writer.

Usage::

    python -m plom_clustering_plugin.evaluation.letters_to_dir \
        --source LETTERS_DIR --out /tmp/letters-dev [--split dev] [--dev-fraction 0.2]

``images64.npz`` has no writer ids; its rows follow ``strokes.jsonl.gz`` line by line
(checked: every label must agree), so writers come from there.  The output holds
``labels.csv`` (``image,label,char,writer``) and ``images/NNNNN.png``, the layout
``evaluate --kind mcq`` reads.  The output must lie outside this repository: the data
may not be shipped.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[2]


def read_writers(strokes_path: Path, labels: np.ndarray) -> tuple[list[str], list[str]]:
    """Writer and original character per row, after checking the rows align.

    Raises:
        ValueError: the line count or any label differs from the npz.
    """
    writers, chars = [], []
    with gzip.open(strokes_path, "rt", encoding="utf-8") as handle:
        for row, line in enumerate(handle):
            record = json.loads(line)
            if row >= len(labels) or record["label"] != labels[row]:
                raise ValueError(
                    f"{strokes_path} line {row + 1} does not match images64.npz row "
                    f"{row}: rows are not aligned, writer ids cannot be taken from it"
                )
            writers.append(str(record["writer"]))
            chars.append(str(record.get("char", record["label"])))
    if len(writers) != len(labels):
        raise ValueError(f"{strokes_path} has {len(writers)} lines, npz {len(labels)}")
    return writers, chars


def split_rows(writers: Sequence[str], split: str, fraction: float, seed: int):
    """Rows of the ``dev`` writers (a seeded ``fraction`` of them), the rest, or all."""
    if split == "all":
        return list(range(len(writers)))
    names = sorted(set(writers))
    shuffled = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    dev = set(shuffled[: max(1, round(fraction * len(names)))])
    return [i for i, w in enumerate(writers) if (w in dev) == (split == "dev")]


def write_folder(out: Path, rows, images, labels, writers, chars) -> None:
    """Write PNGs and labels.csv for the chosen rows."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    with (out / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        table = csv.writer(handle)
        table.writerow(["image", "label", "char", "writer"])
        for row in rows:
            name = f"images/{row:05d}.png"
            Image.fromarray(images[row]).save(out / name)
            table.writerow([name, labels[row], chars[row], writers[row]])


def main(argv: Sequence[str] | None = None) -> int:
    """Convert; 0 on success, 2 on bad input."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="folder with images64.npz")
    parser.add_argument("--out", required=True, help="new folder, outside the repo")
    parser.add_argument("--split", choices=("dev", "train", "all"), default="dev")
    parser.add_argument("--dev-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    source, out = Path(args.source), Path(args.out).resolve()
    if out == REPOSITORY or REPOSITORY in out.parents:
        print(
            f"error: {out} is inside the repository; write elsewhere", file=sys.stderr
        )
        return 2
    try:
        with np.load(source / "images64.npz") as npz:
            images, labels = npz["images"], npz["labels"].astype(str)
        writers, chars = read_writers(source / "strokes.jsonl.gz", labels)
    except (OSError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = split_rows(writers, args.split, args.dev_fraction, args.seed)
    write_folder(out, rows, images, labels, writers, chars)
    count = len({writers[r] for r in rows})
    print(f"wrote {len(rows)} letters by {count} writers ({args.split}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
