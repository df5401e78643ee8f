# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Teach a network to give in one reading what a views model gives in two.

A views model (``hme_views``: v10 is v7 read at full size and at 2/3) groups better than
its network read once, at twice the time per crop.  Here the network itself (a trained
``hme-symbols`` file, its weights loaded back into torch) is trained further so that its
single reading lands where the views model's mean of readings does: the loss is the
cosine distance between the two embeddings, on the training split's images, clean and
scan-simulated.  The teacher runs in onnxruntime: once over those canvases, or on every
batch with ``--augment`` (each batch warped, re-penned and re-scanned).  Measured in
session 9 (v12, v12b): half the views' gain at the true k, none on the exam, so neither
was shipped (docs/models-hme.md, experiments).

The result is exported, calibrated on the held-out calibration images and written with
its entry, like a trained model::

    python -m plom_clustering_plugin.training.hme_distil \
        --student weights/hme-symbols-v7.onnx --teacher weights/hme-symbols-v10.onnx \
        --data /work/shared/data/crohme-dev --out /work/hme-out/v12 --version 12
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..ml.hme import read_entry
from . import hme_data

#: Largest torch-vs-onnxruntime difference accepted when the weights are loaded back.
TOLERANCE = 1e-4


def network_shape(model) -> tuple[int, int, int, int]:
    """The :class:`~.hme_model.HmeNet` shape of an ONNX graph.

    Returns:
        ``(classes, width, deeper, input_scales)``.

    Raises:
        ValueError: the graph embeds symbol counts (``hme_train --count-embed``),
            whose head this loader does not rebuild.
    """
    if any("counter" in node.name for node in model.graph.node):
        raise ValueError(
            "this graph has a symbol-count level (hme_train --count-embed);"
            " it cannot be loaded back here"
        )
    weights = _weights(model)
    passes = _convs_by_pass(model)
    convs = passes[0]
    head = weights[convs["symbols.head.3"].input[1]]
    stem = weights[convs["symbols.trunk.0.0"].input[1]]
    trunk = sum(1 for name in convs if name.startswith("symbols.trunk."))
    return int(head.shape[0]), int(stem.shape[0]), trunk - 5, len(passes)


def _weights(model) -> dict[str, np.ndarray]:
    """A graph's constant tensors by name, initializers and their Identity copies.

    The exporter stores equal tensors once and feeds the other users an Identity of it
    (seen with untrained weights, where every folded bias of a width is zero).
    """
    from onnx import numpy_helper

    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    return weights


def _convs_by_pass(model) -> list[dict]:
    """The Conv nodes of each input scale's pass, by the torch module they came from.

    Export names a node ``/symbols/trunk/trunk.0/trunk.0.0/Conv``; the passes at smaller
    sizes repeat it with a ``_1``, ``_2`` suffix: the last scope is the module inside
    ``symbols``, and its suffix is the pass.
    """
    passes: dict[int, dict] = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or not node.name.startswith("/symbols/"):
            continue
        scope = node.name.split("/")[-2]
        module, _, suffix = scope.partition("_")
        passes.setdefault(int(suffix or 0), {})[f"symbols.{module}"] = node
    return [passes[i] for i in sorted(passes)]


def load_onnx_weights(net, model) -> None:
    """Copy an exported graph's weights into ``net`` (an :class:`~.hme_model.HmeNet`).

    Export folded each BatchNorm into its convolution, so the convolution takes the
    folded weights and its BatchNorm becomes the identity plus the folded bias.
    """
    import torch

    weights = _weights(model)
    modules = dict(net.named_modules())
    convs = _convs_by_pass(model)[0]
    if set(convs) != {n for n, m in modules.items() if isinstance(m, torch.nn.Conv2d)}:
        raise ValueError("the ONNX graph's convolutions do not match the network's")
    with torch.no_grad():
        for name, node in convs.items():
            conv = modules[name]
            conv.weight.copy_(torch.from_numpy(weights[node.input[1]].copy()))
            bias = torch.from_numpy(weights[node.input[2]].copy())
            if conv.bias is not None:
                conv.bias.copy_(bias)
                continue
            norm = modules[name.rsplit(".", 1)[0] + ".1"]  # _conv: Conv, BN, ReLU
            norm.weight.fill_(1.0)
            norm.bias.copy_(bias)
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)


def freeze_batchnorm(net) -> None:
    """Keep every BatchNorm on its loaded statistics while the rest trains."""
    import torch

    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()


def onnx_embeddings(path: Path, canvases: np.ndarray, threads: int) -> np.ndarray:
    """A graph's embeddings of uint8 canvases, in batches of 64."""
    from ..ml.onnx_runtime import load_session
    from .hme_export import sha256_of
    from .hme_train import to_input

    session = load_session(path, sha256_of(path), threads=threads)
    name = session.get_inputs()[0].name
    out = [
        session.run(None, {name: to_input(canvases[start : start + 64]).numpy()})[0]
        for start in range(0, len(canvases), 64)
    ]
    return np.concatenate(out).astype(np.float32)


def load_student(path: Path, canvas: tuple[int, int], threads: int):
    """The network of an exported file, in torch, checked against onnxruntime.

    Returns:
        The network and the largest torch-vs-onnxruntime difference on sparse ink.
    """
    import onnx
    import torch

    from .hme_model import EmbeddingOnly, HmeNet
    from .hme_train import to_input

    model = onnx.load(str(path))
    classes, width, deeper, input_scales = network_shape(model)
    net = HmeNet(classes, width=width, deeper=deeper, input_scales=input_scales)
    load_onnx_weights(net, model)
    noise = np.random.default_rng(0).random((4, *canvas))
    canvases = np.where(noise > 0.9, 255, 0).astype(np.uint8)  # sparse ink
    with torch.no_grad():
        got = EmbeddingOnly(net).eval()(to_input(canvases)).numpy()
    difference = float(np.abs(got - onnx_embeddings(path, canvases, threads)).max())
    if difference > TOLERANCE:
        raise ValueError(f"weights loaded from {path} are off by {difference:.1e}")
    return net, difference


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--student", required=True, help="a trained hme-symbols .onnx")
    parser.add_argument("--teacher", required=True, help="the .onnx to imitate")
    parser.add_argument("--out", required=True, help="folder for the ONNX + entry")
    parser.add_argument("--version", required=True, help="model version to write")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--augment",
        action="store_true",
        help="warp, re-pen and re-scan each batch (the teacher reads every one)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default="auto")
    hme_data.add_source_split_options(parser)
    parser.add_argument("--ckpt-dir", help="checkpoint folder (default: --out)")
    parser.add_argument("--resume", action="store_true", help="continue distil-last.pt")
    parser.add_argument("--smoke", action="store_true", help="tiny run, for CI")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Distil, export, calibrate and validate; returns a process exit code."""
    import torch

    from ..ml.onnx_runtime import load_session
    from .cpu import use_bf16
    from .hme_augment import augment
    from .hme_export import export_onnx, sha256_of
    from .hme_report import write_derived
    from .hme_train import save, to_input

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    student_path, teacher_path = Path(args.student), Path(args.teacher)
    entry = read_entry(student_path.with_suffix(".entry.json"))
    teacher_entry = read_entry(teacher_path.with_suffix(".entry.json"))
    canvas = entry.input.canvas
    if teacher_entry.input.canvas != canvas:
        print("error: the teacher reads another canvas size", file=sys.stderr)
        return 2
    if teacher_entry.input.dot_reach != entry.input.dot_reach:
        print("error: the teacher's crops keep other specks", file=sys.stderr)
        return 2
    try:
        for source in (entry, teacher_entry):
            hme_data.check_source_split(args, source)
        onnx_path = hme_data.derived_onnx_path(
            args, [student_path, teacher_path], "an input model"
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = onnx_path.parent
    net, loaded = load_student(student_path, canvas, args.threads)
    print(f"loaded {student_path} (against onnxruntime: {loaded:.1e})", flush=True)

    data = hme_data.load_source_split(args, canvas, entry.input.dot_reach)
    if args.smoke:
        data = replace(data, train=data.train[:48])
    scanned = hme_data.scanned_copies(data, canvas, args.seed, args.cache_dir)
    inputs = np.concatenate([data.everything.canvases[data.train], scanned])
    if args.augment:
        teacher = load_session(
            teacher_path, sha256_of(teacher_path), threads=args.threads
        )
    else:  # the same canvases every epoch: ask the teacher once
        started = time.monotonic()
        targets = torch.from_numpy(onnx_embeddings(teacher_path, inputs, args.threads))
        print(
            f"teacher: {len(inputs)} canvases in {time.monotonic() - started:.0f} s",
            flush=True,
        )

    bf16 = use_bf16(args.bf16)
    optimiser = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * -(-len(inputs) // args.batch)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    ckpt = Path(args.ckpt_dir or out) / "distil-last.pt"
    epoch, history = 0, []
    if args.resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        for name in ("student", "teacher", "epochs", "augment"):
            if state["args"].get(name) != getattr(args, name):
                raise SystemExit(
                    f"{ckpt} was made with --{name} {state['args'].get(name)},"
                    f" this run asks for {getattr(args, name)}"
                )
        net.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        epoch, history = state["epoch"], state["history"]
        print(f"resumed {ckpt} at epoch {epoch}", flush=True)
    while epoch < args.epochs:
        net.train()
        freeze_batchnorm(net)
        order = np.random.default_rng([args.seed, 7, epoch]).permutation(len(inputs))
        tick, losses = time.monotonic(), []
        gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        for start in range(0, len(order), args.batch):
            batch = order[start : start + args.batch]
            x = to_input(inputs[batch])
            if args.augment:  # a new warp, pen and scanner each time: ask again
                x = augment(x, gen)
                wanted = torch.from_numpy(
                    teacher.run(None, {teacher_entry.input.name: x.numpy()})[0]
                )
            else:
                wanted = targets[batch]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                _, emb = net(x.contiguous(memory_format=torch.channels_last))
            loss = (1.0 - (emb.float() * wanted).sum(1)).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            losses.append(loss.item())
        epoch += 1
        record = {
            "epoch": epoch,
            "distance_to_teacher": round(float(np.mean(losses)), 5),
            "img_per_s": round(len(order) / (time.monotonic() - tick), 1),
        }
        history.append(record)
        print(json.dumps(record), flush=True)
        save(
            ckpt,
            {
                "model": net.state_dict(),
                "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "history": history,
                "args": vars(args),
            },
        )

    net.eval()
    difference = export_onnx(net, onnx_path, canvas)
    print(f"wrote {onnx_path} (ONNX against torch: {difference:.1e})", flush=True)
    write_derived(
        onnx_path,
        entry,
        data,
        args,
        module="hme_distil",
        argv=argv,
        description=(
            f"hme-symbols v{entry.version}'s network (sha256 {entry.sha256[:12]}) trained"
            f" {args.epochs} more epochs to give in one reading the embedding"
            f" hme-symbols v{teacher_entry.version} (sha256 {teacher_entry.sha256[:12]})"
            f" gives (cosine distance, training split clean and scan-simulated"
            f"{', augmented each batch' if args.augment else ''})."
            f" v{entry.version}: {entry.description or ''}"
        ),
        training={
            "student": f"hme-symbols v{entry.version}",
            "student_sha256": entry.sha256,
            "teacher": f"hme-symbols v{teacher_entry.version}",
            "teacher_sha256": teacher_entry.sha256,
            "history": history,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
