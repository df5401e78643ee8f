# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Write one side of the HME model's by-expression split as an evaluation folder.

Usage::

    python -m plom_clustering_plugin.evaluation.hme_split_dir \
        --source /work/shared/data/crohme-dev --out /tmp/crohme-val \
        [--split dev|train|calibration] [--calib-share 0.1]

``hme_train`` trains on 80 % of the expressions of its ``--data`` and keeps the other
20 % (seeded) for validation.  Evaluating a trained model on all of that folder would
score it on its own training images; this writes the validation expressions only
(``--split dev``, same seed and share as training), so that the harness's figures are
dev-set figures.  ``--split calibration`` writes a second set of expressions no model
trained on: the share of the training expressions that ``hme_train --calib-share``
holds out to calibrate distances on (same share and seed: 0.1 for v3 on).  Images are
linked, not copied, and never into this repository.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..training.hme_data import read_labels, training_splits
from .letters_to_dir import REPOSITORY


def main(argv: Sequence[str] | None = None) -> int:
    """Write the folder; 0 on success, 2 on bad input."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="folder with labels.csv")
    parser.add_argument("--out", required=True, help="new folder, outside the repo")
    parser.add_argument(
        "--split", choices=("dev", "train", "calibration"), default="dev"
    )
    parser.add_argument("--val-share", type=float, default=0.2)
    parser.add_argument(
        "--calib-share", type=float, default=0.1, help="as hme_train's (calibration)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    if out == REPOSITORY or REPOSITORY in out.parents:
        print(
            f"error: {out} is inside the repository; write elsewhere", file=sys.stderr
        )
        return 2
    try:
        rows = read_labels(args.source)
    except (OSError, KeyError, csv.Error) as err:
        print(f"error: cannot read {args.source}/labels.csv: {err}", file=sys.stderr)
        return 2
    fit, held, dev = training_splits(
        [t for _, t in rows], args.val_share, args.calib_share, args.seed
    )
    # "calibration": hme_train's held-out calibration expressions; "train": all of
    # the training split, those included.
    chosen = {"dev": dev, "train": sorted(fit + held), "calibration": held}[args.split]
    (out / "images").mkdir(parents=True, exist_ok=True)
    with (out / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        table = csv.writer(handle)
        table.writerow(["image", "latex"])
        for i in chosen:
            path, latex = rows[i]
            name = f"images/{i:05d}{path.suffix}"
            link = out / name
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(path.resolve(), link)
            table.writerow([name, latex])
    expressions = len({rows[i][1] for i in chosen})
    print(
        f"wrote {len(chosen)} images of {expressions} expressions ({args.split}) to {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
