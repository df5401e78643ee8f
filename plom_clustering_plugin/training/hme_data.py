# SPDX-License-Identifier: AGPL-3.0-or-later
"""The HME training data: labels.csv, a split by expression, and pre-rendered canvases.

Every image goes through the plugin's own :func:`~..ml.preprocess.prepare` and
:func:`~..ml.preprocess.fit_to_canvas`, exactly as a scanned crop does at run time, and
is kept as a ``uint8`` canvas so that augmentation (on the fly, in torch) is the only
per-step cost.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..evaluation.scanify import LAYOUTS, blank_reference, scanify
from ..ml.hme import read_entry
from ..ml.manifest import ModelEntry
from ..ml.preprocess import PreparedCrop, fit_to_canvas, prepare
from .hme_tokens import canonical
from .npz_cache import cached_arrays

#: Default canvas of the network: height, width (fit_to_canvas keeps the aspect ratio).
#: v1 used 64x256; v2 96x384 (small symbols such as exponents keep a few pixels).
CANVAS = (96, 384)


@dataclass
class HmeSet:
    """Images and labels of one split.

    Attributes:
        canvases: ``(N, H, W)`` uint8 ink (255 = full ink).
        latex: the ground-truth LaTeX of each image.
        group: an expression index per image (images of one expression share it).
    """

    canvases: np.ndarray
    latex: list[str]
    group: np.ndarray

    def __len__(self) -> int:
        """The number of images."""
        return len(self.latex)


def read_labels(data: str | Path) -> list[tuple[Path, str]]:
    """``(image path, latex)`` rows of a labels.csv folder."""
    root = Path(data)
    with open(root / "labels.csv", newline="", encoding="utf-8") as handle:
        return [(root / row["image"], row["latex"]) for row in csv.DictReader(handle)]


def split_by_expression(
    latex: list[str], val_share: float, seed: int
) -> tuple[list[int], list[int]]:
    """Row indices of a training and a validation split sharing no expression."""
    expressions = sorted({canonical(t) for t in latex})
    rng = np.random.default_rng(seed)
    rng.shuffle(expressions)
    held = set(expressions[: round(len(expressions) * val_share)])
    train = [i for i, t in enumerate(latex) if canonical(t) not in held]
    val = [i for i, t in enumerate(latex) if canonical(t) in held]
    return train, val


def hold_out_calibration(
    train_latex: list[str], calib_share: float, seed: int
) -> tuple[list[int], list[int]]:
    """Positions in the training split to fit on, and to hold out for calibration.

    ``calib_share`` of the training expressions, drawn with ``seed + 1`` so that the
    draw differs from the validation split's (``hme_train --calib-share``).
    """
    return split_by_expression(train_latex, calib_share, seed + 1)


def training_splits(
    latex: list[str],
    val_share: float,
    calib_share: float,
    seed: int,
    fold_val: bool = False,
) -> tuple[list[int], list[int], list[int]]:
    """Rows to train on, to calibrate the distances on, and to validate on.

    Split by expression (``val_share``; 0 trains on everything), then ``calib_share`` of
    the training expressions held out for calibration (empty when 0): the one rule that
    ``hme_train`` and ``hme_views`` share, so a wrapped model is calibrated and
    validated on the images its training run set aside.  ``fold_val`` trains on the
    validation expressions too (no validation rows left) while the calibration rows
    stay those of the split: the refit of a chosen recipe on more data.
    """
    train_rows, val_rows = split_by_expression(latex, val_share, seed)
    calib_rows: list[int] = []
    if calib_share > 0:
        fit, held = hold_out_calibration(
            [latex[i] for i in train_rows], calib_share, seed
        )
        calib_rows = [train_rows[i] for i in held]
        train_rows = [train_rows[i] for i in fit]
    if fold_val:
        train_rows, val_rows = sorted(train_rows + val_rows), []
    return train_rows, calib_rows, val_rows


def to_canvas(crop: PreparedCrop, canvas: tuple[int, int]) -> np.ndarray:
    """A prepared crop on the network's canvas, as uint8 ink (blank: all zero)."""
    if crop.is_blank:
        return np.zeros(canvas, np.uint8)
    ink = fit_to_canvas(crop.ink, *canvas)
    return np.round(np.clip(ink, 0, 1) * 255).astype(np.uint8)


def render(
    path: Path, canvas: tuple[int, int] = CANVAS, dot_reach: int = 0
) -> np.ndarray:
    """One image as the run-time pipeline sees it, on the canvas, as uint8 ink."""
    gray = np.asarray(Image.open(path).convert("L"))
    return to_canvas(prepare(gray, dot_reach=dot_reach), canvas)


class ScanSimulation:
    """The harness's scan simulation and template removal, for training images.

    Training on these crops teaches the net what a scanned answer box leaves behind
    (thick or faint ink, blur, box-line remnants) instead of guessing it with torch
    augmentation.  Real, typeset and report images all go through this one path.
    """

    def __init__(self, dot_reach: int = 0) -> None:
        """Draw the blank box once; keep specks within ``dot_reach`` of writing."""
        self.layout = LAYOUTS["hme"]
        self.reference = blank_reference(self.layout)
        self.dot_reach = dot_reach

    def prepare(self, gray: np.ndarray, rng: np.random.Generator) -> PreparedCrop:
        """Scan-simulate one clean image, then prepare it against the blank box."""
        scanned = scanify(gray, self.layout, rng)
        return prepare(scanned, self.reference, dot_reach=self.dot_reach)


def render_scanned(
    paths: list[Path], canvas: tuple[int, int], seed: int, dot_reach: int = 0
) -> np.ndarray:
    """Images through :class:`ScanSimulation`, as canvases."""
    rng = np.random.default_rng([seed, 31])
    simulation = ScanSimulation(dot_reach)
    out = []
    for path in paths:
        gray = np.asarray(Image.open(path).convert("L"))
        out.append(to_canvas(simulation.prepare(gray, rng), canvas))
    return np.stack(out)


def cached(cache: Path | None, make) -> np.ndarray:
    """``make()``'s canvases, stored as ``cache`` (an ``.npz``) and reloaded when present."""
    return cached_arrays(cache, lambda: {"canvases": make()})["canvases"]


def data_key(
    data: str | Path, count: int, canvas: tuple[int, int], dot_reach: int = 0
) -> str:
    """Names the caches rendered from one data folder (its path, rows, canvas, reach)."""
    text = f"{Path(data).resolve()}:{count}:{canvas}"
    if dot_reach:  # caches made before the option keep their names
        text += f":dots{dot_reach}"
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def canvas_cache(folder: Path, key: str) -> Path:
    """Where :func:`load_set` keeps the canvases of the data named by ``key``."""
    return folder / f"canvases-{key}.npz"


def load_set(
    rows: list[tuple[Path, str]],
    cache: Path | None = None,
    canvas: tuple[int, int] = CANVAS,
    dot_reach: int = 0,
) -> HmeSet:
    """Render (or reload from ``cache``, an ``.npz``) the canvases of ``rows``."""
    canvases = cached(
        cache, lambda: np.stack([render(p, canvas, dot_reach) for p, _ in rows])
    )
    latex = [t for _, t in rows]
    return HmeSet(canvases, latex, expression_groups(latex))


@dataclass(frozen=True)
class TrainingData:
    """A data folder rendered, with a training run's split of its rows.

    Attributes:
        rows: ``(image path, LaTeX)`` per row of ``labels.csv``.
        everything: the canvases of every row.
        key: :func:`data_key` of the folder (names its caches).
        train: rows trained on.
        calibration: rows held out to calibrate the distances (may be empty).
        val: rows of the validation expressions.
        dot_reach: the ``dot_reach`` the images were prepared with.
    """

    rows: list[tuple[Path, str]]
    everything: HmeSet
    key: str
    train: list[int]
    calibration: list[int]
    val: list[int]
    dot_reach: int = 0

    def sets(self) -> tuple[HmeSet, HmeSet | None, HmeSet]:
        """The training, calibration (None when no rows) and validation images."""
        calibration = (
            subset(self.everything, self.calibration) if self.calibration else None
        )
        return (
            subset(self.everything, self.train),
            calibration,
            subset(self.everything, self.val),
        )


def load_training_data(
    data: str | Path,
    canvas: tuple[int, int],
    cache_dir: str | Path | None,
    *,
    val_share: float,
    calib_share: float,
    seed: int,
    dot_reach: int = 0,
    fold_val: bool = False,
) -> TrainingData:
    """Render ``data`` (or reload it from ``cache_dir``) and split it as training did."""
    rows = read_labels(data)
    key = data_key(data, len(rows), canvas, dot_reach)
    cache = canvas_cache(Path(cache_dir), key) if cache_dir else None
    everything = load_set(rows, cache, canvas, dot_reach)
    train, calibration, val = training_splits(
        everything.latex, val_share, calib_share, seed, fold_val
    )
    return TrainingData(rows, everything, key, train, calibration, val, dot_reach)


def add_source_split_options(parser: argparse.ArgumentParser) -> None:
    """Options naming a trained model's data folder and split, for tools deriving from it.

    The same ``--seed``, ``--val-share`` and ``--calib-share`` as its training run give
    the same rows.
    """
    parser.add_argument("--data", required=True, help="the source's training --data")
    parser.add_argument("--seed", type=int, default=0, help="the training run's")
    parser.add_argument("--val-share", type=float, default=0.2, help="as trained")
    parser.add_argument("--calib-share", type=float, default=0.1, help="as trained")
    parser.add_argument(
        "--fold-val", action="store_true", help="as trained (validation trained on)"
    )
    parser.add_argument("--cache-dir", help="where rendered canvases are kept")


def split_record(args: argparse.Namespace) -> dict:
    """The data split a run's rows came from, as its entry keeps it for derived tools.

    ``val_share`` is the one applied: 0 for an ``--all-data`` training run.
    """
    return {
        "seed": args.seed,
        "val_share": 0.0 if getattr(args, "all_data", False) else args.val_share,
        "calib_share": args.calib_share,
        "fold_val": bool(args.fold_val),
    }


def check_source_split(args: argparse.Namespace, entry: ModelEntry) -> None:
    """Refuse a derived tool's split options unless they give the source's rows.

    Other options would calibrate on expressions the source trained on, or report
    "validation" figures on images it learnt, without any error.  Entries written
    before the split was recorded keep it only in prose: there the folded validation
    split, the option most easily forgotten, is checked.

    Raises:
        ValueError: naming the options that differ.
    """
    asked = split_record(args)
    recorded = entry.metrics.get("training", {}).get("split")
    if recorded is None:
        recorded = {"fold_val": "trained on too" in (entry.training_data or "")}
    differ = [
        f"{_as_option(key, recorded[key])} (asked: {_as_option(key, asked[key])})"
        for key in recorded
        if key in asked and recorded[key] != asked[key]
    ]
    if differ:
        raise ValueError(
            f"hme-symbols v{entry.version} was trained with "
            + ", ".join(differ)
            + "; give its training run's split options"
        )


def _as_option(key: str, value: bool | float) -> str:
    """``fold_val``/``True`` as ``--fold-val``, ``calib_share``/0.1 as ``--calib-share 0.1``."""
    name = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return name if value else f"no {name}"
    return f"{name} {value:g}"


def add_source_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--entry``: the one trained model a tool derives a new one from."""
    parser.add_argument("--model", required=True, help="a trained hme-symbols .onnx")
    parser.add_argument("--entry", help="its entry (default: beside it, .entry.json)")


def source_model(args: argparse.Namespace) -> tuple[Path, ModelEntry]:
    """The ``--model`` and its entry, as :func:`add_source_model_options` asked."""
    source = Path(args.model)
    return source, read_entry(args.entry or source.with_suffix(".entry.json"))


def derived_onnx_path(
    args: argparse.Namespace, inputs: Sequence[Path], role: str
) -> Path:
    """Where a tool writes its model: ``--out``/``hme-symbols-v{--version}.onnx``.

    Raises:
        ValueError: that file is one of ``inputs`` (``role`` names it in the message).
    """
    path = Path(args.out) / f"hme-symbols-v{args.version}.onnx"
    if any(path.resolve() == Path(p).resolve() for p in inputs):
        raise ValueError(f"{path} would overwrite {role}")
    return path


def add_derived_model_options(parser: argparse.ArgumentParser) -> None:
    """What every tool writing a new version from trained models takes.

    ``--out`` and ``--version`` name the file, ``--threads`` the report's sessions, and
    :func:`add_source_split_options` the images it is calibrated and validated on.
    """
    parser.add_argument("--out", required=True, help="folder for the ONNX + entry")
    parser.add_argument("--version", required=True, help="model version to write")
    parser.add_argument("--threads", type=int, default=2)
    add_source_split_options(parser)
    parser.add_argument("--smoke", action="store_true", help="tiny report, for CI")


def load_source_split(
    args: argparse.Namespace, canvas: tuple[int, int], dot_reach: int = 0
) -> TrainingData:
    """:func:`load_training_data` as :func:`add_source_split_options` asked.

    ``canvas`` and ``dot_reach`` are the source model's (its entry's input spec).
    """
    return load_training_data(
        args.data,
        canvas,
        args.cache_dir,
        val_share=args.val_share,
        calib_share=args.calib_share,
        seed=args.seed,
        dot_reach=dot_reach,
        fold_val=args.fold_val,
    )


def scanned_copies(
    data: TrainingData,
    canvas: tuple[int, int],
    seed: int,
    cache_dir: str | Path | None,
) -> np.ndarray:
    """One scan-simulated canvas per training row, in ``data.train``'s order (cached)."""
    paths = [data.rows[i][0] for i in data.train]
    cache = (
        Path(cache_dir) / f"scanned-{data.key}-{len(data.train)}-s{seed}.npz"
        if cache_dir
        else None
    )
    return cached(cache, lambda: render_scanned(paths, canvas, seed, data.dot_reach))


def subset(data: HmeSet, rows: list[int]) -> HmeSet:
    """The images at ``rows`` (expression indices renumbered)."""
    latex = [data.latex[i] for i in rows]
    return HmeSet(data.canvases[rows], latex, expression_groups(latex))


def expression_groups(latex: list[str]) -> np.ndarray:
    """An expression index per image: images with the same LaTeX share one."""
    names = {t: i for i, t in enumerate(sorted(set(latex)))}
    return np.array([names[t] for t in latex], np.int64)


def pair_batches(
    group: np.ndarray,
    batch_pairs: int,
    rng: np.random.Generator,
    anchors: np.ndarray | None = None,
) -> list[np.ndarray]:
    """One epoch of batches of (anchor, partner) rows: ``(batch_pairs * 2,)`` each.

    The partner is another writer's image of the same expression when there is one,
    else the anchor itself (its second augmentation stands in for a second writer).
    ``anchors`` (default: every row) are the rows that open a pair this epoch.
    """
    order = rng.permutation(len(group) if anchors is None else anchors)
    return partnered_chunks(order, group, expression_members(group), batch_pairs, rng)


def partnered_chunks(
    order: np.ndarray,
    group: np.ndarray,
    members: dict[int, np.ndarray],
    batch_pairs: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """``order`` cut into batches of ``batch_pairs`` anchors, each with its partners.

    A last partial batch is dropped.
    """
    return [
        with_partners(order[start : start + batch_pairs], group, members, rng)
        for start in range(0, len(order) - batch_pairs + 1, batch_pairs)
    ]


def expression_members(group: np.ndarray) -> dict[int, np.ndarray]:
    """The rows of each expression group."""
    return {int(g): np.flatnonzero(group == g) for g in np.unique(group)}


def with_partners(
    anchors: np.ndarray,
    group: np.ndarray,
    members: dict[int, np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """``anchors`` followed by a partner for each (see :func:`pair_batches`)."""
    partners = []
    for a in anchors:
        others = members[int(group[a])]
        others = others[others != a]
        partners.append(int(rng.choice(others)) if len(others) else int(a))
    return np.concatenate([anchors, np.array(partners, np.int64)])
