# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Evaluate the exported letter model through the run-time path; write its manifest entry.

Usage::

    python -m plom_clustering_plugin.training.letters_eval \
        --data /work/shared/data/letters-train --model weights/mcq-letters-v1.onnx \
        --entry weights/mcq-letters-v1.entry.json [--report /tmp/letters-eval.json] \
        [--errors /tmp/letter-errors]

Only the validation writers of ``letters_data.split_by_writer`` are used.  Every crop
goes through ``preprocess.prepare`` and ``LetterEmbedder`` as in a job.  Sets:

* ``clean``: the pre-rendered ``images64.npz`` letters on white paper;
* ``scan``: the same letters through ``evaluation.scanify`` (printed box, misalignment,
  blur, noise, dust, JPEG) with the blank reference removing the printed box;
* ``clutter``: letters drawn from strokes into boxes with crossed-out attempts,
  circles, dots and line pieces (``letters_boxes``), half of them scan-degraded;
* blank boxes (scanned empty boxes, with and without clutter-free dust).

No torch needed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..evaluation.scanify import LAYOUTS, blank_reference, scanify
from ..ml.letters import LETTERS, LetterEmbedder
from ..ml.manifest import ModelEntry, parse_manifest
from ..ml.preprocess import prepare
from .letters_boxes import TRAIN, compose_box
from .letters_data import dev_writers, read_letters
from .letters_errors import confident_errors, write_error_sheets

#: The unsure bin should hold about this share of the clean validation answers.
UNSURE_SHARE = 0.025
#: Upper case of each class (C already holds c).
CASELESS = {"a": "A", "b": "B", "d": "D", "e": "E", "f": "F"}


def build_entry(model: Path, metrics: dict, review_confidence: float) -> dict:
    """The manifest entry for the exported file (schema of ``ml.manifest``)."""
    data = model.read_bytes()
    version = model_version(model)
    recipe = training_config(model)
    return {
        "name": "mcq-letters",
        "version": version,
        "file": model.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "urls": [f"https://example.invalid/plom-clustering/weights/{model.name}"],
        "description": (
            "Handwritten multiple-choice letters A-F/a-f (C and c merged): 11 letter"
            " probabilities and a 'not a letter' score per candidate mark; 0.30 M-param"
            " CNN on a 64x64 ink canvas (pooled to 32x32 inside). Run with"
            " ml.letters.LetterEmbedder (mark selection, unsure threshold)."
        ),
        "input": {
            "name": "input",
            "shape": [-1, 1, 64, 64],
            "dtype": "float32",
            "normalisation": {
                "ink": "white-on-black",
                "range": [0.0, 1.0],
                "mean": 0.0,
                "std": 1.0,
            },
        },
        "output": {"meaning": "probabilities", "labels": list(LETTERS)},
        "same_answer_distance": 0.1,
        "licence": (
            "Weights: AGPL-3.0-or-later (as the plugin). Training data: UNIPEN"
            " train_r01_v07, released under CC BY 4.0 on Zenodo"
            " (doi 10.5281/zenodo.1195803); the original 1999 UNIPEN CD notice said"
            " research use only."
        ),
        "training_data": training_data(version, recipe),
        "training_command": training_command(version, recipe),
        "seed": 0,
        "metrics": {"review_confidence": review_confidence, **metrics},
    }


def training_config(model: Path) -> dict[str, str]:
    """The options ``letters_train`` wrote beside the model (empty if it is not there)."""
    log = model.parent / "letters-train-log.json"
    if not log.exists():
        return {}
    return json.loads(log.read_text())["config"]


def training_data(version: str, config: dict[str, str]) -> str:
    """What the model was trained on, in words."""
    text = (
        "UNIPEN train_r01_v07 categories 1b/1c, letters A-F/a-f: 17,762 letters by"
        " 174 writers (letters-train); 80 % of the writers trained on, rendered from"
        " pen strokes into answer boxes with clutter and scan degradation"
    )
    if version != "1":  # v1 predates --source; later runs default to "both"
        text += ", plus the same writers' pre-rendered images64 letters"
    if config.get("fonts", "None") != "None":
        text += (
            f", plus {config['font_variants']} draws of each letter in each Debian"
            " handwriting font of training/fonts.py (OFL, GPL and CC BY-SA font"
            " licences; docs/models.md)"
        )
    return text + "."


def training_command(version: str, config: dict[str, str]) -> str:
    """The ``letters_train`` command that made the model (from its log when present)."""
    command = (
        "python -m plom_clustering_plugin.training.letters_train"
        " --data letters-train --out weights/"
    )
    if not config:
        return (
            command
            + " --seed 0"
            + (" --epochs 10 --source strokes" if version == "1" else "")
        )
    for option in ("seed", "epochs", "source", "fonts", "font_variants", "model_file"):
        if config.get(option, "None") != "None":
            command += f" --{option.replace('_', '-')} {config[option]}"
    return command


def model_version(model: Path) -> str:
    """The version in a file name such as ``mcq-letters-v2.onnx`` (else "1")."""
    match = re.search(r"-v([0-9A-Za-z.+_-]+)\.onnx$", model.name)
    return match.group(1) if match else "1"


def load_embedder(
    model: Path, threads: int = 1, batch_size: int = 64
) -> LetterEmbedder:
    """A LetterEmbedder for ``model`` from a provisional entry (hash of the file)."""
    entry = entry_for(build_entry(model, {}, 0.5))
    return LetterEmbedder.from_file(
        entry, model, threads=threads, batch_size=batch_size
    )


def entry_for(raw: dict) -> ModelEntry:
    """Parse one entry dict with the manifest's own validation."""
    return parse_manifest({"schema_version": 1, "models": [raw]}).models[0]


def validation_images(data: Path) -> tuple[np.ndarray, list[str]]:
    """``images64.npz`` rows of the validation writers, and their labels."""
    with np.load(data / "images64.npz") as npz:
        images, labels = npz["images"], npz["labels"].astype(str)
    with gzip.open(data / "strokes.jsonl.gz", "rt", encoding="utf-8") as handle:
        writers = [json.loads(line)["writer"] for line in handle]
    dev = dev_writers(writers)
    rows = [i for i, w in enumerate(writers) if w in dev]
    return images[rows], [str(labels[i]) for i in rows]


def score(
    probabilities: np.ndarray, truth: Sequence[str], blank: np.ndarray, threshold: float
) -> dict:
    """Accuracy, case-insensitive accuracy, unsure bin and errors inside/outside it."""
    truth_idx = np.array([LETTERS.index(t) for t in truth])
    guess = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    right = (guess == truth_idx) & ~blank
    caseless = (
        np.array(
            [
                CASELESS.get(LETTERS[g], LETTERS[g]) == CASELESS.get(t, t)
                for g, t in zip(guess, truth, strict=True)
            ]
        )
        & ~blank
    )
    unsure = (confidence < threshold) & ~blank
    sure = ~unsure & ~blank
    confusions = Counter(
        f"{t}->{LETTERS[g]}"
        for g, t, ok, b in zip(guess, truth, right, blank, strict=True)
        if not ok and not b
    )
    n = len(truth)
    return {
        "n": n,
        "accuracy": float(right.mean()),
        "caseless_accuracy": float(caseless.mean()),
        "written_called_blank": int(blank.sum()),
        "unsure_share": float(unsure.mean()),
        "error_outside_unsure": float(
            len(confident_errors(probabilities, truth, blank, threshold))
            / max(sure.sum(), 1)
        ),
        "error_inside_unsure": float((~right & unsure).sum() / max(unsure.sum(), 1)),
        "caseless_error_outside_unsure": float(
            (~caseless & sure).sum() / max(sure.sum(), 1)
        ),
        "errors_caught_by_unsure": float(
            (~right & unsure).sum() / max((~right).sum(), 1)
        ),
        "top_confusions": dict(confusions.most_common(8)),
    }


def predict_set(embedder: LetterEmbedder, crops: list) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and blank flags for prepared crops."""
    blank = np.array([c.is_blank for c in crops])
    return embedder.predict(crops), blank


def throughput(
    model: Path, crops: list, threads: int, batch: int, seconds: float = 4.0
) -> dict:
    """Crops per second through ``LetterEmbedder.embed`` (prepared crops in).

    Returns:
        ``wall``: crops per wall-clock second; ``cpu``: crops per CPU second of this
        process (all threads), which a busy shared machine distorts far less.
    """
    embedder = load_embedder(model, threads=threads, batch_size=batch)
    embedder.embed(crops[:batch])  # warm-up
    done, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for begin in range(0, len(crops), batch):
            embedder.embed(crops[begin : begin + batch])
            done += len(crops[begin : begin + batch])
            if time.perf_counter() - start >= seconds:
                break
    wall = time.perf_counter() - start
    return {
        "wall": round(done / wall),
        "cpu": round(done / max(time.process_time() - cpu, 1e-9)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate, print a summary, write the entry; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--entry", type=Path, help="write the manifest entry here")
    parser.add_argument("--report", type=Path, help="write all figures here (JSON)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, help="fixed unsure threshold")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--limit", type=int, help="only the first N letters (checks)")
    parser.add_argument(
        "--errors", type=Path, help="write contact sheets of the confident clean errors"
    )
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    embedder = load_embedder(args.model)
    images, truth = validation_images(args.data)
    images, truth = images[: args.limit], truth[: args.limit]
    layout = LAYOUTS["mcq"]
    reference = blank_reference(layout)
    sets = {
        "clean": [prepare(img) for img in images],
        "scan": [prepare(scanify(img, layout, rng), reference) for img in images],
    }
    letters = read_letters(args.data / "strokes.jsonl.gz")
    dev = dev_writers([x.writer for x in letters])
    val = [x for x in letters if x.writer in dev][: args.limit]
    clutter_truth = [LETTERS[x.label] for x in val]
    sets["clutter"] = [prepare(compose_box(x, val, TRAIN, rng)[0]) for x in val]
    results = {name: predict_set(embedder, crops) for name, crops in sets.items()}
    clean_p, clean_blank = results["clean"]
    winning = np.sort(clean_p[~clean_blank].max(axis=1))
    threshold = args.threshold or float(winning[int(UNSURE_SHARE * len(winning))])
    report: dict = {"review_confidence": round(threshold, 4)}
    for name, (p, blank) in results.items():
        report[name] = score(
            p, clutter_truth if name == "clutter" else truth, blank, threshold
        )
    if args.errors:
        rows = confident_errors(clean_p, truth, clean_blank, threshold)
        write_error_sheets(images, truth, clean_p, rows, args.errors)
    embedder.select_marks = False  # the same model on all the ink, for comparison
    for name, crops in sets.items():
        p, blank = predict_set(embedder, crops)
        truth_of = clutter_truth if name == "clutter" else truth
        report[f"{name}_whole_ink"] = score(p, truth_of, blank, threshold)
    blank_white = np.full((64, 64), 255, np.uint8)
    blanks = [
        prepare(scanify(blank_white, layout, rng), reference) for _ in range(1000)
    ]
    report["blank_recall_scan"] = float(np.mean([c.is_blank for c in blanks]))
    report["model_bytes"] = args.model.stat().st_size
    if not args.no_speed:
        crops = [c for c in sets["scan"] if not c.is_blank][:2048]
        report["load_average"] = round(os.getloadavg()[0], 2)
        report["crops_per_second"] = {
            f"threads{t}_batch{b}": throughput(args.model, crops, t, b)
            for t in (1, 2)
            for b in (1, 64)
        }
    print(json.dumps(report, indent=2))
    if args.report:
        args.report.write_text(json.dumps(report, indent=2))
    if args.entry:
        metrics = {
            "evaluation": (
                "by-writer validation of letters-train: 35 held-out writers, 3,421"
                " letters; real held-out collections not available"
            ),
        }
        for name in ("clean", "scan", "clutter"):
            r = report[name]
            metrics[name] = {
                k: round(v, 4) if isinstance(v, float) else v
                for k, v in r.items()
                if k != "top_confusions"
            }
        metrics["blank_recall_scan"] = report["blank_recall_scan"]
        if "crops_per_second" in report:
            metrics["crops_per_second"] = report["crops_per_second"]
        entry = build_entry(args.model, metrics, round(threshold, 4))
        args.entry.write_text(json.dumps(entry, indent=2) + "\n")
        entry_for(entry)  # the manifest parser accepts it
    return 0


if __name__ == "__main__":
    sys.exit(main())
