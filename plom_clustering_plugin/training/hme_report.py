# SPDX-License-Identifier: AGPL-3.0-or-later
"""After training: calibrate on the training split, score validation, write the entry.

Everything here runs the exported ONNX file through :class:`~..ml.hme.HmeEmbedder`, the
way the plugin will, so the figures describe the shipped file, not the torch model.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..ml.hme import HmeEmbedder
from ..ml.manifest import DEFAULT_DIFFERENT_ANSWER_DISTANCE, ModelEntry
from ..ml.preprocess import PreparedCrop, prepare
from . import hme_data, hme_export, hme_validate
from .hme_augment import augment

#: Training images embedded (augmented, as unseen writers) for the calibration.
CALIBRATION_IMAGES = 1500


def _crops(
    paths: list[Path], scan: bool, seed: int, dot_reach: int
) -> list[PreparedCrop]:
    """Prepared crops of images, clean or through the harness's scan simulation."""
    rng = np.random.default_rng(seed)
    simulation = hme_data.ScanSimulation(dot_reach) if scan else None
    crops = []
    for path in paths:
        gray = np.asarray(Image.open(path).convert("L"))
        if simulation:
            crops.append(simulation.prepare(gray, rng))
        else:
            crops.append(prepare(gray, dot_reach=dot_reach))
    return crops


def _calibration_vectors(embedder, train: hme_data.HmeSet, seed: int):
    """Embeddings of augmented training images, and their LaTeX."""
    rng = np.random.default_rng([seed, 7])
    rows = np.sort(rng.choice(len(train), min(CALIBRATION_IMAGES, len(train)), False))
    gen = torch.Generator().manual_seed(seed)
    x = augment(torch.from_numpy(train.canvases[rows]).float().div(255)[:, None], gen)
    session = embedder.session
    vectors = np.concatenate(
        [
            session.run(None, {hme_export.INPUT_NAME: x[s : s + 64].numpy()})[0]
            for s in range(0, len(x), 64)
        ]
    )
    return vectors, [train.latex[i] for i in rows]


def _safe(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except ValueError as err:  # too few repeated expressions (tiny data)
        return {"skipped": str(err)}


def throughput(embedder, crops: list[PreparedCrop]) -> float:
    """Crops per second of batched ONNX embedding (preprocessing excluded)."""
    sample = (crops * (256 // max(1, len(crops)) + 1))[:256]
    embedder.embed(sample[:64])  # warm-up
    tick = time.perf_counter()
    embedder.embed(sample)
    return round(len(sample) / (time.perf_counter() - tick), 1)


def final_report(
    onnx_path: Path,
    args: argparse.Namespace,
    *,
    train: hme_data.HmeSet,
    calibration: hme_data.HmeSet | None = None,
    synthetic: int = 0,
    val: hme_data.HmeSet,
    rows: list,
    val_rows: list[int],
    history: list[dict],
    command: str,
    extra: dict,
) -> dict:
    """Calibrate, validate, measure speed and write ``hme-symbols-v<N>.entry.json``.

    ``train`` holds the real training images; the distances are calibrated on
    ``calibration`` (held-out training expressions) when given, else on ``train``.
    ``synthetic`` counts the font renders trained on beside them.
    """
    fonts = (
        f"; plus {synthetic} renders typeset in Debian handwriting fonts"
        f" ({args.synth_copies} per training expression, {args.synth_exam}"
        " generated exam answers"
        + (
            f", {args.synth_symbols} of each symbol class alone"
            if args.synth_symbols
            else ""
        )
        + (
            f", {args.near_misses} near misses of training expressions"
            if args.near_misses
            else ""
        )
        + "; fonts: OFL/GPL/CC licences, see docs/models-hme.md)"
        if synthetic
        else ""
    )
    kwargs = dict(
        version=args.version,
        command=command,
        seed=args.seed,
        training_data=(
            f"crohme-dev (CROHME 2014 training subset, {len(rows)} images): "
            + (
                "all expressions"
                if args.all_data
                else (
                    "all expressions but the calibration ones (the validation"
                    f" {args.val_share:.0%} trained on too)"
                    if args.fold_val
                    else f"{1 - args.val_share:.0%} of the expressions (split by"
                    " expression, seeded)"
                )
            )
            + (
                f", {len(train)} images trained on and {len(calibration)} images of"
                f" {args.calib_share:.0%} of those expressions held out to calibrate"
                " the distances"
                if calibration is not None
                else f", {len(train)} images"
            )
            + fonts
        ),
        description=(
            f"HSC-style symbol class maps ({args.input_scales} input scales"
            + (f", {args.deeper} extra layers at 1/8 resolution" if args.deeper else "")
            + "), sigmoid, max-pooled over the image and a 3x7 grid"
            + (
                f", and the symbol counts (weight {args.count_embed:g})"
                if args.count_embed
                else ""
            )
            + ", L2 per level; trained with symbol-presence BCE + supervised"
            " contrastive loss"
            + (f" + symbol-count loss ({args.count:g})" if args.count else "")
            + (f" + expression-centre loss ({args.proxy:g})" if args.proxy else "")
            + (
                f", {args.scan_share:.0%} of images scan-simulated"
                if args.scan_share
                else ""
            )
            + (
                f", half of them shrunk by a factor of {args.zoom_out:g}-1"
                if args.zoom_out < 1
                else ""
            )
            + (
                f", specks within {args.dot_reach} px of writing kept"
                if args.dot_reach
                else ""
            )
            + (
                f", {args.synth_share:.0%} of anchors typeset in handwriting fonts"
                if synthetic
                else ""
            )
            + (
                f", one-symbol answers opening {args.lone_boost} pairs per epoch"
                if args.lone_boost > 1
                else ""
            )
            + (
                ", each near miss batched beside its expression"
                if args.near_misses
                else ""
            )
            + (
                f", {args.hard_share:.0%} of anchors batched with their nearest"
                " neighbours by the net's own embedding"
                + (", one per expression" if args.hard_distinct else "")
                + (f", from epoch {args.hard_from}" if args.hard_from > 1 else "")
                if args.hard_share
                else ""
            )
            + (
                f", the contrastive loss on the mean of each image's reading and its"
                f" reading shrunk to {args.views_loss} (read it with hme_views"
                f" --shrink {args.views_loss})"
                + (f" from epoch {args.views_from}" if args.views_from > 1 else "")
                if args.views_loss is not None
                else ""
            )
        ),
    )
    return calibrate_and_validate(
        onnx_path,
        args.canvas,
        kwargs,
        train=train,
        calibration=calibration,
        val=val,
        val_paths=[rows[i][0] for i in val_rows],
        seed=args.seed,
        threads=args.threads,
        smoke=args.smoke,
        training=extra
        | {"history_tail": history[-3:], "split": hme_data.split_record(args)},
        dot_reach=args.dot_reach,
    )


def calibrate_and_validate(
    onnx_path: Path,
    canvas: tuple[int, int],
    entry_fields: dict,
    *,
    train: hme_data.HmeSet,
    calibration: hme_data.HmeSet | None,
    val: hme_data.HmeSet,
    val_paths: list[Path],
    seed: int,
    threads: int,
    smoke: bool,
    training: dict,
    dot_reach: int = 0,
) -> dict:
    """Choose the clusterer's distances, score validation and write the entry.

    ``canvas`` and ``dot_reach`` are the model's input spec; ``entry_fields`` are
    :func:`~.hme_export.write_entry`'s descriptive keywords (version, command, seed,
    training data, description).  Returns the metrics.
    """
    count = 3 if smoke else 20
    entry_path = hme_export.write_entry(
        onnx_path,
        canvas,
        dot_reach=dot_reach,
        metrics={},
        same_answer_distance=0.08,
        different_answer_distance=DEFAULT_DIFFERENT_ANSWER_DISTANCE,
        **entry_fields,
    )
    embedder = HmeEmbedder.from_files(onnx_path, entry_path, threads=threads)
    vectors, latex = _calibration_vectors(
        embedder, train if calibration is None else calibration, seed
    )
    calibrated = _safe(hme_validate.calibrate, vectors, latex, seed=seed, count=count)
    same = calibrated.get("same_answer_distance", 0.08)
    different = calibrated.get(
        "different_answer_distance", DEFAULT_DIFFERENT_ANSWER_DISTANCE
    )
    review = _safe(
        hme_validate.review_threshold,
        vectors,
        latex,
        same,
        different,
        seed=seed,
        count=count,
    )
    metrics: dict = {
        "validation": (
            "by-expression validation split of crohme-dev (20% of its expressions, never"
            " trained on); dev-set figures, not the held-out acceptance set"
            if val_paths
            else "none: every expression but the calibration ones was trained on"
        ),
        "review_confidence": review if isinstance(review, float) else 0.0,
        "calibration_on_training_split": calibrated,
        "training": training,
    }
    if val_paths:
        for scan in (False,) if smoke else (False, True):
            crops = _crops(val_paths, scan, seed, dot_reach)
            vecs = embedder.embed(crops)
            name = "val_scan" if scan else "val_clean"
            metrics[name] = {
                "true_k": _safe(hme_validate.true_k, vecs, val.latex, seed=seed),
                "exam_auto_k": _safe(
                    hme_validate.exam,
                    vecs,
                    val.latex,
                    same,
                    different,
                    seed,
                    count=3 if smoke else hme_validate.EXAM_COUNT,
                ),
            }
        metrics["crops_per_second_2_threads"] = throughput(embedder, crops)
    entry_path = hme_export.write_entry(
        onnx_path,
        canvas,
        dot_reach=dot_reach,
        metrics=metrics,
        same_answer_distance=same,
        different_answer_distance=different,
        **entry_fields,
    )
    print(json.dumps(metrics, indent=1), flush=True)
    print(f"wrote {entry_path}", flush=True)
    return metrics


def write_derived(
    onnx_path: Path,
    source: ModelEntry,
    data: hme_data.TrainingData,
    args: argparse.Namespace,
    *,
    module: str,
    argv: list[str] | None,
    description: str,
    training: dict,
) -> dict:
    """Calibrate, validate and write the entry of a model made from ``source``.

    The command recorded is the source's own followed by this run's (``module`` under
    ``plom_clustering_plugin.training`` with ``argv``); the entry's seed and training
    data are the source's.  From ``args``: ``version`` to write, ``seed`` (drives the
    calibration and validation draws), ``threads`` and ``smoke``.
    """
    command = (
        f"{source.training_command} && python -m"
        f" plom_clustering_plugin.training.{module} "
        + shlex.join(argv if argv is not None else sys.argv[1:])
    )
    fields = dict(
        version=args.version,
        command=command,
        seed=source.seed,
        training_data=source.training_data,
        description=description,
    )
    train, calibration, val = data.sets()
    return calibrate_and_validate(
        onnx_path,
        source.input.canvas,
        fields,
        train=train,
        calibration=calibration,
        val=val,
        val_paths=[data.rows[i][0] for i in data.val],
        seed=args.seed,
        threads=args.threads,
        smoke=args.smoke,
        training=training | {"split": hme_data.split_record(args)},
        dot_reach=source.input.dot_reach,
    )
