# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Train the multiple-choice letter model and export it to ONNX.

Usage::

    python -m plom_clustering_plugin.training.letters_train \
        --data /work/shared/data/letters-train --out weights/ --seed 0 [--smoke]

Letters of 80 % of the writers are drawn into answer boxes (``letters_boxes``) and
trained on; the other writers' letters are only used to report accuracy.  A checkpoint
is written after every epoch and picked up again by the same command.  ``--smoke``
trains a tiny model on a few hundred letters for CI (under a minute).

``--out`` receives only the ONNX file and a JSON log; rendered canvases (derived from
the training data, never to be committed) and the checkpoint go to ``--work``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .cpu import use_bf16
from .fonts import font_files
from .letters_data import read_letters, split_by_writer
from .letters_dataset import cached_set, images64_set
from .letters_export import export_onnx
from .letters_fonts import font_letters
from .letters_model import LetterNet, augment

CHECKPOINT = "letters-checkpoint.pt"
MODEL_FILE = "mcq-letters-v3.onnx"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="letters-train folder")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "plom-letters-train",
        help="cache and checkpoint folder (keep it outside the repository)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--variants", type=int, default=2, help="boxes per letter")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--processes", type=int, default=2, help="rendering processes")
    parser.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="bf16 autocast (auto: only where the CPU has native bf16)",
    )
    parser.add_argument("--model-file", default=MODEL_FILE)
    parser.add_argument(
        "--source",
        choices=("strokes", "images64", "both"),
        default="both",
        help="strokes drawn into cluttered boxes, the clean images64 of the same"
        " training writers, or both (default)",
    )
    parser.add_argument(
        "--fonts",
        help="also train on letters drawn in handwriting fonts: 'debian', a folder"
        " or a comma list of files (training/fonts.py)",
    )
    parser.add_argument(
        "--font-variants", type=int, default=40, help="draws per character and font"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny, fast run for CI")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.variants, args.batch = 2, 1, 64
        args.font_variants = 2
    return args


class Log:
    """Timestamped progress lines."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        """Print ``message`` after the seconds since the start."""
        print(f"[{time.monotonic() - self.start:7.1f}s] {message}", flush=True)


def accuracy(net: LetterNet, images: np.ndarray, labels: np.ndarray) -> float:
    """12-way accuracy of ``net`` on uint8 canvases (no augmentation)."""
    net.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), 512):
            x = (
                torch.from_numpy(images[start : start + 512])
                .float()
                .div(255)
                .unsqueeze(1)
            )
            y = torch.from_numpy(labels[start : start + 512])
            correct += int((net(net.pool(x)).argmax(1) == y).sum())
    return correct / max(len(images), 1)


def main(argv: Sequence[str] | None = None) -> int:
    """Train, checkpointing every epoch, then export; 0 on success."""
    args = parse_args(argv)
    log = Log()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work: Path = args.work / ("smoke" if args.smoke else "full")
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"

    letters = read_letters(args.data / "strokes.jsonl.gz", 400 if args.smoke else None)
    train, val = split_by_writer(letters)
    log(
        f"{len(letters)} letters: {len(train)} train, {len(val)} validation (by writer)"
    )
    stat = (args.data / "strokes.jsonl.gz").stat()
    source = f"{args.data.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    data_id = hashlib.sha256(source.encode()).hexdigest()[:10]  # another pool, no reuse
    tag = f"{data_id}-s{args.seed}-v{args.variants}-n{len(train)}"
    parts = []
    if args.source in ("strokes", "both"):
        parts.append(
            cached_set(
                cache / f"train-{tag}.npz",
                train,
                args.variants,
                args.seed,
                processes=args.processes,
            )
        )
    if args.source in ("images64", "both"):
        # The tablet's own rendering of the same training writers: one more pen and
        # scale, and the clean, centred look of letters with no box around them.
        parts.append(images64_set(args.data, {x.writer for x in train}))
    if args.fonts:
        fonts = font_files(args.fonts)
        if not fonts:
            raise SystemExit(f"--fonts {args.fonts!r}: no fonts found")
        parts.append(font_letters(fonts, args.font_variants, args.seed))
        log(f"{len(parts[-1][1])} letters drawn in {len(fonts)} fonts")
    x_train = np.concatenate([x for x, _ in parts])
    y_train = np.concatenate([y for _, y in parts])
    x_val, y_val = cached_set(
        cache / f"val-{data_id}-s{args.seed}-n{len(val)}.npz",
        val,
        1,
        args.seed + 1000,
        processes=args.processes,
    )
    log(f"rendered {len(x_train)} training and {len(x_val)} validation canvases")

    net = LetterNet().to(memory_format=torch.channels_last)  # 1.5x faster with bf16
    steps = args.epochs * (len(x_train) // args.batch)
    optimiser = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        # OneCycle divides by its phase lengths: tiny (smoke) runs need a few steps.
        optimiser,
        max_lr=args.lr,
        total_steps=max(steps, 10),
        pct_start=0.25,
    )
    config = {
        k: str(v) for k, v in vars(args).items() if k not in ("threads", "processes")
    }
    history: list[dict] = []
    first_epoch = 0
    checkpoint = work / CHECKPOINT
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state["config"] == config:
            net.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            schedule.load_state_dict(state["schedule"])
            torch.set_rng_state(state["rng"])
            first_epoch, history = state["epoch"], state["history"]
            log(f"resumed after epoch {first_epoch}")
        else:
            log("checkpoint is from other settings: starting afresh")
    bf16 = use_bf16(args.bf16)
    log(f"bf16 autocast: {bf16}")
    train_start = time.monotonic()
    for epoch in range(first_epoch, args.epochs):
        net.train()
        generator = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(x_train), generator=generator)
        epoch_start, total_loss = time.monotonic(), 0.0
        batches = len(x_train) // args.batch
        for b in range(batches):
            rows = order[b * args.batch : (b + 1) * args.batch].numpy()
            x = torch.from_numpy(x_train[rows]).float().div(255).unsqueeze(1)
            x = augment(F.avg_pool2d(x, 2), generator)
            x = x.contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(y_train[rows])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(net(x), y, label_smoothing=0.05)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total_loss += float(loss.detach())
        seconds = time.monotonic() - epoch_start
        val_acc = accuracy(net, x_val, y_val)
        history.append(
            {
                "epoch": epoch + 1,
                "loss": total_loss / max(batches, 1),
                "val_accuracy_12": val_acc,
                "seconds": seconds,
            }
        )
        log(
            f"epoch {epoch + 1}/{args.epochs}: loss {history[-1]['loss']:.4f}, "
            f"validation {100 * val_acc:.2f} %, {batches * args.batch / seconds:.0f} img/s"
        )
        state = {
            "config": config,
            "model": net.state_dict(),
            "optimiser": optimiser.state_dict(),
            "schedule": schedule.state_dict(),
            "rng": torch.get_rng_state(),
            "epoch": epoch + 1,
            "history": history,
        }
        torch.save(state, checkpoint.with_suffix(".tmp"))
        checkpoint.with_suffix(".tmp").replace(checkpoint)
    train_seconds = time.monotonic() - train_start
    net = net.to(memory_format=torch.contiguous_format).eval()
    diff = export_onnx(net, out / args.model_file)
    log(f"exported {out / args.model_file} (onnxruntime vs torch: {diff:.2e})")
    summary = {
        "config": config,
        "history": history,
        "parameters": sum(p.numel() for p in net.parameters()),
        "train_seconds_this_session": train_seconds,
        "total_seconds": time.monotonic() - log.start,
        "onnx_torch_max_diff": diff,
    }
    (out / "letters-train-log.json").write_text(json.dumps(summary, indent=2))
    log(f"done: training {train_seconds / 60:.1f} min this session")
    return 0


if __name__ == "__main__":
    sys.exit(main())
