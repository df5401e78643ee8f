# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Train the handwritten-math (HME) symbol model, export it to ONNX, validate it.

Usage::

    python -m plom_clustering_plugin.training.hme_train \
        --data /work/shared/data/crohme-dev --out weights/ --seed 0 \
        [--minutes N] [--epochs N] [--resume CKPT] [--all-data] [--smoke] \
        [--canvas 96x384] [--scan-share 0.5] [--version 3] [--bf16 auto|on|off]
        [--synth-fonts debian] [--synth-copies 2] [--synth-exam 1500]
        [--synth-share 0.33] [--synth-symbols 0] [--lone-boost 1] [--hard-share 0]
        [--hard-distinct] [--hard-from 1] [--views-loss 2/3]
        [--views-from 1]
        [--near-misses 0] [--lr-horizon F] [--proxy 0] [--count 0]
        [--count-embed 0]

The expressions of ``--data`` are split 80/20 BY EXPRESSION (seeded); the net learns
symbol presence (BCE) plus a supervised-contrastive term that pulls two writings of one
expression together (``hme_model``); ``--proxy W`` adds a term pulling each writing to
a learnt centre of its expression; ``--count W`` adds a head of density maps whose
sums are trained to count each symbol, and ``--count-embed W2`` makes those counts a
third level of the embedding.  A checkpoint is written after every epoch to
``--ckpt-dir``; ``--resume`` continues it (with the checkpoint's network,
``--lr-horizon``, ``--dot-reach``, ``--proxy`` and ``--count``: another value stops
with a message), and ``--minutes`` stops a run early (it is still exported).  At the end the
model is exported to ``<out>/hme-symbols-v<N>.onnx``, the clusterer's distances are
calibrated on the training split, the validation split is scored (clean and
scan-like), and ``hme-symbols-v<N>.entry.json`` is written.

``--scan-share`` of each batch is drawn from a second copy of the training images that
went through the evaluation harness's scan simulation and template removal, rendered
once and cached next to the checkpoints.

``--synth-fonts`` adds typeset renders of every training expression in handwriting
fonts (``hme_synth``; ``--synth-copies`` per expression) and ``--synth-exam`` short
exam-style answers; they share an expression's group with its real writings, so a real
image's partner is often another hand.  ``--synth-share`` of each epoch's anchors are
synthetic; every real image is an anchor once per epoch.

``--synth-symbols N`` adds N renders of every symbol class typeset alone (distinct
fonts): a one-symbol answer is told from its look-alikes (``a`` / ``\alpha``) by one
class map, and crohme-dev has few lone symbols.  ``--lone-boost B`` makes every
one-symbol anchor (real or typeset) open B pairs per epoch instead of one.

``--near-misses N`` typesets N near misses of training expressions (one symbol
replaced by a look-alike, inserted, deleted or swapped, or the whole wrapped:
``hme_near``), each its own expression, and batches one row of every member of such a
family side by side, so that the contrastive loss separates answers one symbol apart.

``--lr-horizon F`` makes the cosine decay span F times the batches the run takes; by
default it spans one step per ``--batch-pairs`` training rows, as every shipped model
was trained (about twice the run with typeset rows: the decay stops near half way,
which session 17 measured as better than finishing it in 48 epochs).

``--hard-share H`` puts H of each epoch's anchors in hard batches (``hme_hard``): a
random anchor with the anchors the current net embeds nearest to it, so look-alike
expressions meet in one batch and the contrastive loss has to separate them.
``--hard-distinct`` takes one anchor per expression into a hard batch, so that a
batch opened from an expression with many writings holds its look-alikes.
``--hard-from E`` starts the hard batches at epoch E, once the net's neighbours mean
something; the epochs before it are all random batches.

``--views-loss 2/3`` trains on what ``hme_views --shrink 2/3`` reads at run time: each
batch also runs shrunk, and the contrastive loss sees the mean of the two embeddings
(``hme_view_loss``).  An epoch with the shrunk copy takes about 1.75 times as long
(it is read on the full canvas, as at run time), so ``--views-from E`` keeps it to the
epochs from E on: from epoch 37 of 48 a run takes about 1.2 times as long.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..argtypes import exact_fraction, fraction, positive_float, whole_number
from . import hme_data, hme_export, hme_hard, hme_near, hme_tokens, hme_validate
from .cpu import use_bf16
from .hme_augment import augment
from .hme_model import HmeNet
from .hme_report import final_report
from .hme_view_loss import first_reading, with_shrunk
from .hme_views import shrunk_size
from .npz_cache import cached_arrays

DEFAULT_CKPT_DIR = Path(
    os.environ.get("HME_CKPT_DIR", Path.home() / ".cache" / "plom-hme-ckpt")
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="folder with labels.csv")
    parser.add_argument("--out", required=True, help="folder for the ONNX + entry")
    parser.add_argument("--seed", type=int, default=0, help="splits, renders, weights")
    parser.add_argument(
        "--init-seed",
        type=int,
        help="weights and batch order only (default: --seed); the splits and renders"
        " follow --seed, so runs that differ here share validation and calibration",
    )
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--minutes", type=float, default=110.0, help="wall-time cap")
    parser.add_argument("--resume", help="checkpoint to continue from")
    parser.add_argument("--ckpt-dir", default=str(DEFAULT_CKPT_DIR))
    parser.add_argument("--val-share", type=float, default=0.2)
    parser.add_argument("--all-data", action="store_true", help="train on every image")
    parser.add_argument(
        "--fold-val",
        action="store_true",
        help="train on the validation expressions too; calibration rows unchanged",
    )
    parser.add_argument(
        "--calib-share",
        type=float,
        default=0.0,
        help="share of the training expressions held out to calibrate distances on",
    )
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument(
        "--deeper", type=count, default=0, help="extra 3x3 layers at 1/8 resolution"
    )
    parser.add_argument(
        "--input-scales",
        type=int,
        choices=(2, 3),
        default=2,
        help="sizes the net reads each canvas at: 2 (full, half), 3 (and quarter)",
    )
    parser.add_argument("--batch-pairs", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--lr-horizon",
        type=positive_float,
        help="the cosine decay spans this many times the batches the run will take"
        " (1: it reaches its floor at the last epoch); default: one step per"
        " --batch-pairs training rows, as v1-v22 were trained, which with typeset rows"
        " is about twice the run (docs/models-hme.md, session 17)",
    )
    parser.add_argument("--bce", type=float, default=10.0, help="presence weight")
    parser.add_argument("--supcon", type=float, default=0.5, help="contrastive weight")
    parser.add_argument(
        "--proxy",
        type=float,
        default=0.0,
        help="weight of a loss pulling each writing to a learnt centre of its"
        " expression and away from the other expressions' (0: off, as up to v36)",
    )
    parser.add_argument(
        "--count",
        type=float,
        default=0.0,
        help="weight of a loss counting each symbol (density maps summed, against"
        " the LaTeX's counts; 0: no counting head, as up to v41)",
    )
    parser.add_argument(
        "--count-embed",
        type=float,
        default=0.0,
        help="weight of the counts as a level of the embedding (needs --count)",
    )
    parser.add_argument("--val-every", type=int, default=4, help="epochs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--canvas", type=canvas_size, default=hme_data.CANVAS)
    parser.add_argument("--version", default="3", help="model version to write")
    parser.add_argument(
        "--synth-fonts",
        help="handwriting fonts for synthetic renders: 'debian', a folder or files",
    )
    parser.add_argument("--synth-copies", type=int, default=2, help="per expression")
    parser.add_argument("--synth-exam", type=int, default=1500, help="exam answers")
    parser.add_argument(
        "--synth-share", type=float, default=0.33, help="synthetic share of anchors"
    )
    parser.add_argument(
        "--synth-symbols", type=count, default=0, help="renders of each symbol alone"
    )
    parser.add_argument(
        "--lone-boost",
        type=count,
        default=1,
        help="anchor turns of one-symbol answers per epoch (1: no boost)",
    )
    parser.add_argument(
        "--hard-share",
        type=fraction,
        default=0.0,
        help="share of each epoch's anchors batched with their nearest neighbours",
    )
    parser.add_argument(
        "--hard-distinct",
        action="store_true",
        help="hard batches take one anchor per expression (needs --hard-share)",
    )
    parser.add_argument(
        "--hard-from",
        type=whole_number(1),
        default=1,
        help="first epoch, from 1, with hard batches (needs --hard-share; 1: all)",
    )
    parser.add_argument(
        "--views-loss",
        type=exact_fraction,
        help="also read each batch shrunk by this factor (e.g. 2/3) and train the"
        " contrastive loss on the mean of the two embeddings, as hme_views --shrink"
        " reads crops at run time (default: one reading, as up to v87)",
    )
    parser.add_argument(
        "--views-from",
        type=whole_number(1),
        default=1,
        help="first epoch, from 1, read twice (needs --views-loss; 1: all)",
    )
    parser.add_argument(
        "--near-misses",
        type=count,
        default=0,
        help="typeset near misses of training expressions (one symbol changed),"
        " each batched beside its expression (needs --synth-fonts)",
    )
    parser.add_argument(
        "--scan-share", type=float, default=0.5, help="share of scan-simulated images"
    )
    parser.add_argument(
        "--dot-reach",
        type=count,
        default=0,
        help="keep specks within this many pixels of writing (dots of i, short ="
        " bars) in every training image; written to the entry's input spec so that"
        " crops are prepared alike at run time (0: every speck removed, as up to v31)",
    )
    parser.add_argument(
        "--zoom-out",
        type=zoom_factor,
        default=1.0,
        help="shrink half of the training images by a factor from [this, 1] (1: off)",
    )
    parser.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="bf16 autocast (auto: only where the CPU has native bf16)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args(argv)
    if args.near_misses and not args.synth_fonts:
        parser.error("--near-misses needs --synth-fonts to typeset them")
    if args.near_misses and args.hard_share:
        parser.error("--near-misses and --hard-share batch differently: choose one")
    if args.hard_distinct and not args.hard_share:
        parser.error("--hard-distinct shapes hard batches: give --hard-share too")
    if args.hard_from > 1 and not args.hard_share:
        parser.error("--hard-from delays hard batches: give --hard-share too")
    if args.count_embed > 0 and args.count <= 0:
        parser.error("--count-embed needs the counting head: give --count too")
    if args.smoke:
        args.epochs, args.width, args.batch_pairs, args.val_every = 2, 4, 4, 1
        args.canvas = (48, 192)
        args.synth_copies, args.synth_exam = 1, 8
        args.synth_symbols = min(args.synth_symbols, 1)
        args.near_misses = min(args.near_misses, 8)
    if args.views_from > 1 and args.views_loss is None:
        parser.error("--views-from delays the second reading: give --views-loss too")
    if args.views_loss is not None:
        try:
            shrunk_size(args.canvas, args.views_loss)
        except ValueError as error:
            parser.error(f"--views-loss: {error}")
    return args


count = whole_number(0)


def zoom_factor(text: str) -> float:
    """A shrink factor in ``(0, 1]`` (1 leaves the size alone)."""
    value = fraction(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a shrink factor must be above 0")
    return value


def canvas_size(text: str) -> tuple[int, int]:
    """``"96x384"`` -> ``(96, 384)`` (height, width; multiples of 16)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HEIGHTxWIDTH") from None
    if height % 16 or width % 16 or height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: both sides must be multiples of 16"
        )
    return height, width


def supcon_loss(emb: torch.Tensor, group: torch.Tensor, tau: float = 0.1):
    """Supervised contrastive loss: rows of one expression are each other's positives."""
    sim = emb @ emb.T / tau
    self_mask = torch.eye(len(emb), dtype=torch.bool)
    sim = sim.masked_fill(self_mask, -1e9)
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positive = (group[:, None] == group[None, :]) & ~self_mask
    count = positive.sum(1)
    has = count > 0
    mean_log = (log_prob * positive).sum(1)[has] / count[has]
    return -mean_log.mean()


def proxy_loss(
    emb: torch.Tensor, group: torch.Tensor, proxies: torch.Tensor, tau: float = 0.1
) -> torch.Tensor:
    """Softmax over every training expression's learnt centre (a proxy).

    SupCon only compares the writings a batch holds; this compares each writing with
    every expression's centre, which is what KMeans at the true k reads: a big
    expression written in varied layouts is pulled together as a whole.
    """
    logits = emb @ F.normalize(proxies, dim=1).T / tau
    return F.cross_entropy(logits, group)


def make_proxies(net: HmeNet, canvas: tuple[int, int], groups: int) -> torch.Tensor:
    """One random unit centre per expression, as wide as the net's embedding."""
    net.eval()  # a probe, not a step: BatchNorm keeps its statistics
    with torch.no_grad():
        width = net(torch.zeros(1, 1, *canvas))[1].shape[1]
    net.train()
    return torch.nn.Parameter(F.normalize(torch.randn(groups, width), dim=1))


def presence_of(counts: np.ndarray) -> np.ndarray:
    """Multi-hot symbol presence ``(N, C)`` float32, from :func:`counts_of`'s counts."""
    return (counts > 0).astype(np.float32)


def counts_of(latex: list[str], vocabulary: list[str]) -> np.ndarray:
    """``(N, C)`` float32: how many times each row's LaTeX writes each class."""
    out = np.zeros((len(latex), len(vocabulary)), np.float32)
    for i, text in enumerate(latex):
        for index, count in hme_tokens.symbol_counts(text, vocabulary).items():
            out[i, index] = count
    return out


def count_loss(counts: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Smooth L1 between each input size's symbol counts and the LaTeX's, averaged."""
    return torch.stack([F.smooth_l1_loss(c, target) for c in counts]).mean()


def to_input(canvases: np.ndarray) -> torch.Tensor:
    """uint8 canvases -> ``(N, 1, H, W)`` float ink in ``[0, 1]``."""
    return torch.from_numpy(canvases).float().div_(255).unsqueeze(1)


@torch.no_grad()
def infer(
    net: HmeNet, canvases: np.ndarray, bf16: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Presence probabilities and embeddings of clean canvases (for monitoring)."""
    net.eval()
    probs, embs = [], []
    for start in range(0, len(canvases), 128):
        x = to_input(canvases[start : start + 128])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, emb = net(x.contiguous(memory_format=torch.channels_last))
        probs.append(torch.sigmoid(logits.float()).numpy())
        embs.append(emb.float().numpy())
    net.train()
    return np.concatenate(probs), np.concatenate(embs)


def monitor(
    net, val: hme_data.HmeSet, targets: np.ndarray, seed: int, bf16: bool
) -> dict:
    """Symbol mAP and true-k clustering of the validation split."""
    probs, embs = infer(net, val.canvases, bf16)
    out = {"val_map": round(hme_validate.symbol_map(probs, targets), 4)}
    try:
        out |= hme_validate.true_k(embs, val.latex, seed=seed)
    except ValueError as err:  # too few repeated expressions (smoke data)
        out["true_k"] = f"skipped: {err}"
    return out


def save(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (a killed run never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def reached(epoch: int, first_epoch: int) -> bool:
    """Whether a ``--*-from`` option is on in this epoch.

    Args:
        epoch: the epoch being trained, counted from 0 as the training loop does.
        first_epoch: the option's first epoch, counted from 1 as the command line does.
    """
    return epoch + 1 >= first_epoch


def lr_factor(step: int, total: int) -> float:
    """Linear warm-up over 3 % of the steps, then cosine decay to 2 %."""
    warm = max(1, int(0.03 * total))
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return 0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * progress))


def main(argv: list[str] | None = None) -> int:
    """Train, export, calibrate and validate; returns a process exit code."""
    args = parse_args(argv)
    started = time.monotonic()
    torch.set_num_threads(args.threads)
    init_seed = args.seed if args.init_seed is None else args.init_seed
    torch.manual_seed(init_seed)
    ckpt_dir = Path(args.ckpt_dir)
    # Before any rendering: a checkpoint of another network fails in seconds.
    state = torch.load(args.resume, weights_only=False) if args.resume else None
    if state:
        check_same_network(state["args"], args, args.resume)
    bf16 = use_bf16(args.bf16)
    # Calibration rows: expressions never trained on, for the clusterer's distances: a
    # net scores its own training images too well, and distances chosen on them
    # over-split new writers (v3's first run: 0.4 chosen, validation wanted 0.5-0.6).
    data = hme_data.load_training_data(
        args.data,
        args.canvas,
        ckpt_dir,
        val_share=0.0 if args.all_data else args.val_share,
        calib_share=args.calib_share,
        seed=args.seed,
        dot_reach=args.dot_reach,
        fold_val=args.fold_val,
    )
    train, calibration, val = data.sets()
    # With the validation rows trained on, the held-out calibration rows are the only
    # unseen writing left to watch the run by.
    watched = calibration if args.fold_val and calibration is not None else val
    scanned = None
    if args.scan_share > 0:
        scanned = hme_data.scanned_copies(data, args.canvas, args.seed, ckpt_dir)
        print(f"{len(scanned)} scan-simulated training canvases", flush=True)
    real_rows = len(train)
    family = None
    if args.synth_fonts:
        train, scanned, pairs = add_synthetic(
            train, scanned, args, ckpt_dir / f"synth-{data.key}"
        )
        if pairs:
            family = hme_near.families(train.latex, pairs)
    vocabulary = (
        state["vocabulary"]
        if state
        else hme_tokens.build_vocabulary(train.latex, 1 if args.smoke else 3)
    )
    label_counts = counts_of(train.latex, vocabulary)
    train_counts = torch.from_numpy(label_counts)
    train_targets = torch.from_numpy(presence_of(label_counts))
    watched_targets = presence_of(counts_of(watched.latex, vocabulary))
    print(
        f"{len(train)} training images, {len(val)} validation images,"
        f" {len(vocabulary)} symbol classes, canvas {args.canvas}, bf16 {bf16}",
        flush=True,
    )

    net = HmeNet(
        len(vocabulary),
        args.width,
        deeper=args.deeper,
        input_scales=args.input_scales,
        counting=args.count > 0,
        count_weight=args.count_embed,
    ).to(memory_format=torch.channels_last)
    parameters = [{"params": list(net.parameters())}]
    proxies = None
    if args.proxy > 0:
        proxies = make_proxies(net, args.canvas, int(train.group.max()) + 1)
        parameters.append({"params": [proxies], "weight_decay": 0.0})
    optimiser = torch.optim.AdamW(parameters, lr=args.lr, weight_decay=1e-4)
    trained = [p for g in parameters for p in g["params"]]
    lone = np.array([len(hme_tokens.tokens(t)) == 1 for t in train.latex])
    # By default the schedule counts one step per batch_pairs rows, as every shipped
    # model was trained: with typeset rows that is about twice the batches an epoch
    # runs (v17: 329 against 159), so the decay stops near half way.  Session 17
    # measured a full decay (--lr-horizon 1) as worse: mAP 0.54 against 0.65.
    if state:
        steps_per_epoch = state.get("steps_per_epoch", len(train) // args.batch_pairs)
    elif args.lr_horizon:
        steps_per_epoch = epoch_steps(real_rows, lone, args, init_seed)
    else:
        steps_per_epoch = len(train) // args.batch_pairs
    total = round(steps_per_epoch * args.epochs * (args.lr_horizon or 1.0))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: lr_factor(s, total)
    )
    epoch, history = 0, []
    if state:
        net.load_state_dict(state["model"])
        if proxies is not None:
            proxies.data.copy_(state["proxies"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        epoch, history = state["epoch"], state["history"]
        print(f"resumed {args.resume} at epoch {epoch}", flush=True)

    group = torch.from_numpy(train.group)
    stopped_early = False
    first_epoch = epoch + 1  # this process's, after a resume too
    while epoch < args.epochs:
        rng = np.random.default_rng([init_seed, epoch])
        gen = torch.Generator().manual_seed(init_seed * 1000 + epoch)
        tick, seen, losses, skipped = time.monotonic(), 0, [], 0
        anchors = epoch_anchors(real_rows, len(train), args.synth_share, rng)
        anchors = boost(anchors, lone, args.lone_boost)
        # Before --hard-from an untrained net's neighbours are not look-alikes.
        hard_share = args.hard_share if reached(epoch, args.hard_from) else 0.0
        if hard_share > 0:
            batches = hme_hard.mixed_batches(
                lambda rows: infer(net, train.canvases[rows], bf16)[1],
                train.group,
                anchors,
                args.batch_pairs,
                hard_share,
                rng,
                distinct=args.hard_distinct,
            )
        elif family is not None:
            batches = hme_data.partnered_chunks(
                hme_near.family_order(anchors, train.group, family, rng),
                train.group,
                hme_data.expression_members(train.group),
                args.batch_pairs,
                rng,
            )
        else:
            batches = hme_data.pair_batches(train.group, args.batch_pairs, rng, anchors)
        shrink = args.views_loss if reached(epoch, args.views_from) else None
        for batch in batches:
            x = augment(
                to_input(pick_canvases(train, scanned, batch, args, rng)),
                gen,
                zoom_out=args.zoom_out,
            )
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits, emb, counts = first_reading(
                    *net.outputs(
                        with_shrunk(x, shrink).contiguous(
                            memory_format=torch.channels_last
                        )
                    ),
                    len(x),
                )
            bce = F.binary_cross_entropy_with_logits(
                logits.float(), train_targets[batch]
            )
            con = supcon_loss(emb.float(), group[batch])
            loss = args.bce * bce + args.supcon * con
            counted = torch.zeros(())
            if counts:
                counted = count_loss(counts, train_counts[batch])
                loss = loss + args.count * counted
            centre = torch.zeros(())
            if proxies is not None:
                centre = proxy_loss(emb.float(), group[batch], proxies)
                loss = loss + args.proxy * centre
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            # max_norm=inf only measures: a non-finite step is skipped, never applied.
            norm = torch.nn.utils.clip_grad_norm_(trained, float("inf"))
            if torch.isfinite(loss) and torch.isfinite(norm):
                optimiser.step()
            else:
                skipped += 1
            scheduler.step()
            seen += len(batch)
            losses.append((bce.item(), con.item(), centre.item(), counted.item()))
        epoch += 1
        record = {
            "epoch": epoch,
            "bce": round(float(np.mean([b for b, *_ in losses])), 4),
            "supcon": round(float(np.mean([c for _, c, *_ in losses])), 4),
            "img_per_s": round(seen / (time.monotonic() - tick), 1),
            "skipped_steps": skipped,
            "minutes": round((time.monotonic() - started) / 60, 1),
        }
        if proxies is not None:
            record["proxy"] = round(float(np.mean([p for _, _, p, _ in losses])), 4)
        if args.count > 0:
            record["count"] = round(float(np.mean([n for *_, n in losses])), 4)
        if len(watched) and (epoch % args.val_every == 0 or epoch == args.epochs):
            record |= monitor(net, watched, watched_targets, args.seed, bf16)
        history.append(record)
        print(json.dumps(record), flush=True)
        if warning := skipped_warning(skipped, len(losses), bf16):
            print(warning, flush=True)
        if epoch == first_epoch:
            now = time.monotonic()
            minutes_left = args.minutes - (now - started) / 60
            if warning := pace_warning(
                (now - tick) / 60, epoch, args.epochs, minutes_left, bf16
            ):
                print(warning, flush=True)
        save(
            ckpt_dir / "last.pt",
            {
                "model": net.state_dict(),
                "proxies": None if proxies is None else proxies.detach().clone(),
                "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "history": history,
                "vocabulary": vocabulary,
                "args": vars(args),
                "steps_per_epoch": steps_per_epoch,
            },
        )
        per_epoch = (time.monotonic() - started) / max(1, len(history))
        if (time.monotonic() - started) / 60 + per_epoch / 60 > args.minutes:
            stopped_early = epoch < args.epochs
            print(f"time cap reached after epoch {epoch}", flush=True)
            break

    net.eval()
    out = Path(args.out)
    onnx_path = out / f"hme-symbols-v{args.version}.onnx"
    difference = hme_export.export_onnx(net, onnx_path, args.canvas)
    print(f"exported {onnx_path} (ORT vs torch max difference {difference:.1e})")
    command = "python -m plom_clustering_plugin.training.hme_train " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    synthetic = len(train) - real_rows
    final_report(
        onnx_path,
        args,
        # Calibration stands in for unseen real writers: real training images only.
        train=hme_data.subset(train, list(range(real_rows))),
        calibration=calibration,
        synthetic=synthetic,
        val=val,
        rows=data.rows,
        val_rows=data.val,
        history=history,
        command=command,
        extra={"epochs": epoch, "stopped_early": stopped_early, "ort_diff": difference},
    )
    return 0


#: The options that shape the network's weights, with their value in checkpoints
#: written before the option existed.
NETWORK_OPTIONS = {"width": 16, "deeper": 0, "input_scales": 2, "count_embed": 0.0}
#: The options that shape the learning-rate curve: the schedule is rebuilt from the
#: command line on ``--resume`` (a LambdaLR keeps only its step), so another value
#: would continue the run on another curve.
SCHEDULE_OPTIONS = {"lr_horizon": None}
#: The options that change what the images hold: the renders are cached by them, but a
#: resumed run would go on learning other inputs than its first epochs did.
INPUT_OPTIONS = {"dot_reach": 0}
#: The options that add trained parameters beside the network: the optimiser's state
#: holds them, so a resumed run must have them too.
LOSS_OPTIONS = {"proxy": 0.0, "count": 0.0}


def check_same_network(saved: dict, args: argparse.Namespace, path: str) -> None:
    """Stop with a clear message when ``--resume`` names another run's checkpoint.

    Another network (width, depth, input scales) could not load the weights; another
    schedule (``--lr-horizon``) or input (``--dot-reach``) would load them and
    silently train on another curve or other images; another ``--proxy`` or
    ``--count`` would lack or drop the expression centres or the counting head that
    the optimiser's state holds.
    """
    checked = NETWORK_OPTIONS | SCHEDULE_OPTIONS | INPUT_OPTIONS | LOSS_OPTIONS
    for name, default in checked.items():
        if saved.get(name, default) != getattr(args, name):
            raise SystemExit(
                f"--resume {path}: the checkpoint has --{name.replace('_', '-')}"
                f" {saved.get(name, default)}, this run asks for {getattr(args, name)}"
            )


#: Share of an epoch's steps that may be skipped as non-finite before a warning.
SKIPPED_WARN_SHARE = 0.05


def skipped_warning(skipped: int, steps: int, bf16: bool) -> str | None:
    """A warning when many steps were skipped (session 5: width 20 in bf16 lost 20 %)."""
    if steps == 0 or skipped / steps <= SKIPPED_WARN_SHARE:
        return None
    hint = (
        " bf16 overflows in the first layers at some widths: try --bf16 off or a"
        " width that is a multiple of 16."
        if bf16
        else ""
    )
    return (
        f"warning: {skipped} of {steps} steps this epoch had non-finite gradients"
        f" and were skipped.{hint}"
    )


def pace_warning(
    epoch_minutes: float, done: int, epochs: int, minutes_left: float, bf16: bool
) -> str | None:
    """A warning when, at this epoch's pace, ``--minutes`` ends the run early.

    Such a run stops before its learning rate has come down, so it is not the recipe
    it names (session 26: 3.1 min per epoch alone in float32 on an AVX2-only CPU,
    17.8 beside one harness run, against 1.1 with bf16).
    """
    needed = epoch_minutes * (epochs - done)
    if needed <= minutes_left:
        return None
    reach = done + int(max(0.0, minutes_left) // max(epoch_minutes, 1e-9))
    hint = "" if bf16 else " without native bf16 (float32)"
    return (
        f"warning: at {epoch_minutes:.1f} min per epoch{hint} the {epochs - done}"
        f" epochs left need about {needed:.0f} min, {minutes_left:.0f} remain under"
        f" --minutes: the run would stop near epoch {reach} of {epochs}, before its"
        " learning rate has come down. Give it the CPU to itself, or stop it and"
        " continue later with --resume."
    )


def pick_canvases(
    train: hme_data.HmeSet,
    scanned: np.ndarray | None,
    batch: np.ndarray,
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> np.ndarray:
    """The batch's canvases, each from the scan-simulated copy with ``scan_share``."""
    canvases = train.canvases[batch]
    if scanned is None:
        return canvases
    use_scan = rng.random(len(batch)) < args.scan_share
    canvases[use_scan] = scanned[batch[use_scan]]
    return canvases


def epoch_anchors(
    real: int, total: int, synth_share: float, rng: np.random.Generator
) -> np.ndarray:
    """Every real row once, plus a random ``synth_share`` of synthetic rows."""
    synthetic = total - real
    if synthetic <= 0 or synth_share <= 0:
        return np.arange(real)
    wanted = min(synthetic, round(real * synth_share / (1 - synth_share)))
    extra = real + rng.choice(synthetic, wanted, replace=False)
    return np.concatenate([np.arange(real), extra])


def epoch_steps(
    real: int, lone: np.ndarray, args: argparse.Namespace, seed: int
) -> int:
    """Batches one epoch runs: its anchors (:func:`epoch_anchors`, boosted) in pairs.

    The learning-rate schedule spans this many steps per epoch.  The synthetic rows
    drawn differ from epoch to epoch, so the count of boosted one-symbol anchors
    varies by a few; the schedule's floor holds past its end.
    """
    rng = np.random.default_rng([seed, 0])
    anchors = epoch_anchors(real, len(lone), args.synth_share, rng)
    return len(boost(anchors, lone, args.lone_boost)) // args.batch_pairs


def boost(anchors: np.ndarray, chosen: np.ndarray, turns: int) -> np.ndarray:
    """``anchors`` with the ``chosen`` rows among them repeated to ``turns`` turns."""
    extra = anchors[chosen[anchors]]
    return np.concatenate([anchors, *[extra] * max(0, turns - 1)])


def add_synthetic(
    train: hme_data.HmeSet,
    scanned: np.ndarray | None,
    args: argparse.Namespace,
    cache_stem: Path,
) -> tuple[hme_data.HmeSet, np.ndarray | None, list[tuple[str, str]]]:
    """The training split with typeset renders appended (rows after the real ones).

    Also returns the (expression, near miss) pairs typeset (``--near-misses``).
    """
    from . import hme_synth
    from .fonts import CAPITALS_ONLY, font_files

    # A capital-shaped lower case would teach "x" from an X (the v3 candidate had it).
    fonts = [f for f in font_files(args.synth_fonts) if f.name not in CAPITALS_ONLY]
    if not fonts:
        raise SystemExit(f"--synth-fonts {args.synth_fonts!r}: no fonts found")
    expressions = sorted(set(train.latex))
    exam = hme_synth.exam_answers(args.synth_exam, np.random.default_rng(args.seed))
    known = set(expressions)
    expressions += [t for t in exam if t not in known]
    parts = [(expressions, args.synth_copies, args.seed)]
    if args.synth_symbols:
        symbols = hme_synth.lone_symbols(train.latex, 1 if args.smoke else 3)
        parts.append((symbols, args.synth_symbols, args.seed + 1))
    pairs = []
    if args.near_misses:
        pairs = hme_near.near_misses(
            sorted(set(train.latex)),
            args.near_misses,
            np.random.default_rng([args.seed, 2]),
            exclude=[t for texts, _, _ in parts for t in texts],
        )
        parts.append(([v for _, v in pairs], args.synth_copies, args.seed + 2))
    latex, canvases = list(train.latex), [train.canvases]
    scans = [] if scanned is None else [scanned]
    for texts, copies, seed in parts:
        # The texts and fonts themselves: a count alone would serve stale renders.
        digest = hashlib.sha256("\n".join([*texts, *map(str, fonts)]).encode())
        tag = f"{len(fonts)}f-{copies}c-{len(texts)}e-s{seed}-{digest.hexdigest()[:10]}"

        def render(texts=texts, copies=copies, seed=seed) -> dict[str, np.ndarray]:
            clean, scan, rows = hme_synth.render_synthetic(
                texts, fonts, copies, args.canvas, seed, args.dot_reach
            )
            return {"clean": clean, "scanned": scan, "latex": np.array(rows)}

        arrays = cached_arrays(
            cache_stem.with_name(f"{cache_stem.name}-{tag}.npz"), render
        )
        latex += [str(t) for t in arrays["latex"]]
        canvases.append(arrays["clean"])
        if scans:
            scans.append(arrays["scanned"])
        print(
            f"{len(arrays['latex'])} synthetic renders of {len(set(arrays['latex']))}"
            f" expressions in {len(fonts)} fonts",
            flush=True,
        )
    canvases = np.concatenate(canvases)
    scanned = np.concatenate(scans) if scans else None
    return (
        hme_data.HmeSet(canvases, latex, hme_data.expression_groups(latex)),
        scanned,
        pairs,
    )


if __name__ == "__main__":
    sys.exit(main())
