# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Wrap a trained ``hme-symbols`` graph so that it reads each crop at more than one size.

The wrapped graph takes the same canvas.  Inside, it also shrinks the canvas about its
centre (``--shrink 2/3``: the ink at two thirds of its size, with a margin round it),
runs the trained network on both along the batch axis, and returns the mean of the two
unit embeddings, renormalised.  The network's readings of a crop at two sizes disagree
in different places for different writers, so their mean sits nearer the expression's
other writings: on v7, `top50` purity at the true k 0.943 -> 0.965 (five harness seeds,
session 8; docs/models-hme.md, "Shipped v10").  The price is a second pass per crop.

The weights are untouched; the distances are calibrated again, on the images the
training run held out, and the new file gets its own version and entry::

    python -m plom_clustering_plugin.training.hme_views \
        --model weights/hme-symbols-v7.onnx --data /work/shared/data/crohme-dev \
        --out /work/hme-out/v10 --version 10 --shrink 2/3 --calib-share 0.1
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..argtypes import exact_fraction
from . import hme_data

#: Largest wrapped-graph-vs-numpy difference accepted (both fp32).
TOLERANCE = 1e-5
#: The wrapped graph's internal names (prefixed so they cannot clash with the model's).
_PREFIX = "views/"


def shrunk_size(canvas: tuple[int, int], shrink: Fraction) -> tuple[int, int]:
    """The shrunk canvas ``(height, width)``; exact, or a ValueError saying why not."""
    sizes = tuple(side * shrink for side in canvas)
    if any(size.denominator != 1 for size in sizes):
        raise ValueError(
            f"a {canvas[0]}x{canvas[1]} canvas does not shrink by {shrink} to whole"
            " pixels: choose a fraction whose denominator divides both sides"
        )
    return int(sizes[0]), int(sizes[1])


def shrink_canvases(batch: np.ndarray, shrink: Fraction) -> np.ndarray:
    """What the wrapped graph feeds its second pass, in numpy (``(N, 1, H, W)``).

    Area resampling (each pixel repeated ``numerator`` times, then averaged over
    ``denominator``-wide blocks), centred on a canvas of the original size.
    """
    up, down = shrink.numerator, shrink.denominator
    height, width = batch.shape[-2:]
    small_h, small_w = shrunk_size((height, width), shrink)
    big = batch.repeat(up, axis=2).repeat(up, axis=3)
    small = big.reshape(len(batch), 1, small_h, down, small_w, down).mean(axis=(3, 5))
    out = np.zeros_like(batch)
    top, left = (height - small_h) // 2, (width - small_w) // 2
    out[:, :, top : top + small_h, left : left + small_w] = small
    return out


def require_one_input_and_output(graph) -> None:
    """A ValueError unless ``graph`` (an ``onnx.GraphProto``) is shaped like hme-symbols'."""
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError("not an hme-symbols graph: it needs one input and one output")


def probe_batch(canvas: tuple[int, int]) -> np.ndarray:
    """Three seeded canvases of sparse ink, to check a rewritten graph against numpy."""
    rng = np.random.default_rng(0)
    return (rng.random((3, 1, *canvas)) > 0.9).astype(np.float32)


def add_views(model, canvas: tuple[int, int], shrinks: list[Fraction]):
    """A copy of ``model`` (an ``onnx.ModelProto``) that averages over sizes.

    The original input name and output name stay, so the manifest entry's input spec
    and the embedder are unchanged.  Returns the new ``ModelProto``.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    require_one_input_and_output(graph)
    source_input, source_output = graph.input[0].name, graph.output[0].name
    inner_in, inner_out = _PREFIX + "batch", _PREFIX + "embeddings"
    for node in graph.node:
        node.input[:] = [inner_in if n == source_input else n for n in node.input]
        node.output[:] = [inner_out if n == source_output else n for n in node.output]

    def const(name: str, values, dtype=TensorProto.INT64) -> str:
        array = np.asarray(values)
        graph.initializer.append(
            helper.make_tensor(_PREFIX + name, dtype, array.shape, array.ravel())
        )
        return _PREFIX + name

    height, width = canvas
    front, views = [], [source_input]
    for i, shrink in enumerate(shrinks):
        small_h, small_w = shrunk_size(canvas, shrink)
        up, down = shrink.numerator, shrink.denominator
        top, left = (height - small_h) // 2, (width - small_w) // 2
        names = [f"{_PREFIX}{i}/{step}" for step in ("up", "small", "view")]
        scales = const(f"{i}/scales", [1, 1, up, up], TensorProto.FLOAT)
        pads = [0, 0, top, left, 0, 0, height - small_h - top, width - small_w - left]
        front += [
            helper.make_node(
                "Resize", [source_input, "", scales], [names[0]], mode="nearest"
            ),
            helper.make_node(
                "AveragePool",
                [names[0]],
                [names[1]],
                kernel_shape=[down, down],
                strides=[down, down],
            ),
            helper.make_node(
                "Pad", [names[1], const(f"{i}/pads", pads)], [names[2]], mode="constant"
            ),
        ]
        views.append(names[2])
    front.append(helper.make_node("Concat", views, [inner_in], axis=0))
    stacked, summed = _PREFIX + "stacked", _PREFIX + "summed"
    dim, shape = _PREFIX + "width", _PREFIX + "shape"  # the embedding width
    back = [  # (views x N, D) -> (views, N, D), D read from the tensor (opset >= 15)
        helper.make_node("Shape", [inner_out], [dim], start=1),
        helper.make_node(
            "Concat", [const("lead", [len(views), -1]), dim], [shape], axis=0
        ),
        helper.make_node("Reshape", [inner_out, shape], [stacked]),
        helper.make_node(
            "ReduceSum", [stacked, const("axis", [0])], [summed], keepdims=0
        ),
        helper.make_node("LpNormalization", [summed], [source_output], axis=1, p=2),
    ]
    nodes = front + list(graph.node) + back
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


def check_views(source: Path, wrapped: Path, canvas: tuple[int, int], shrinks) -> float:
    """Largest difference between the wrapped graph and the mean done in numpy."""
    import onnxruntime as ort

    batch = probe_batch(canvas)
    inner = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    outer = ort.InferenceSession(str(wrapped), providers=["CPUExecutionProvider"])
    name = inner.get_inputs()[0].name
    views = [batch] + [shrink_canvases(batch, s) for s in shrinks]
    total = sum(inner.run(None, {name: v})[0] for v in views)
    expected = total / np.linalg.norm(total, axis=1, keepdims=True)
    got = outer.run(None, {name: batch})[0]
    return float(np.abs(got - expected).max())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--shrink`` defaults to one extra view at 2/3."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    hme_data.add_source_model_options(parser)
    hme_data.add_derived_model_options(parser)
    parser.add_argument(
        "--shrink",
        type=exact_fraction,
        action="append",
        help="extra view's size against the canvas (repeatable; default 2/3)",
    )
    args = parser.parse_args(argv)
    args.shrink = args.shrink or [Fraction(2, 3)]
    return args


def main(argv: list[str] | None = None) -> int:
    """Wrap, check, calibrate and validate; returns a process exit code."""
    import onnx

    from .hme_report import write_derived

    args = parse_args(argv)
    source, entry = hme_data.source_model(args)
    canvas = entry.input.canvas
    try:
        hme_data.check_source_split(args, entry)
        wrapped = add_views(onnx.load(str(source)), canvas, args.shrink)
        onnx_path = hme_data.derived_onnx_path(args, [source], "the model it wraps")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(wrapped, str(onnx_path))
    difference = check_views(source, onnx_path, canvas, args.shrink)
    if difference > TOLERANCE:
        print(f"error: the views graph is off by {difference:.1e}", file=sys.stderr)
        return 1
    print(f"wrote {onnx_path} (against numpy: {difference:.1e})", flush=True)

    data = hme_data.load_source_split(args, canvas, entry.input.dot_reach)
    sizes = ", ".join(str(s) for s in args.shrink)
    write_derived(
        onnx_path,
        entry,
        data,
        args,
        module="hme_views",
        argv=argv,
        description=(
            f"hme-symbols v{entry.version}'s weights (sha256 {entry.sha256[:12]}),"
            f" read at full size and at {sizes} of it (centred), the mean of the unit"
            f" embeddings renormalised. v{entry.version}: {entry.description or ''}"
        ),
        training={
            "source": f"hme-symbols v{entry.version}",
            "source_sha256": entry.sha256,
            "shrinks": [str(s) for s in args.shrink],
            "views_vs_numpy": difference,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
