# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Run a trained ``hme-symbols`` graph's convolutions in 8-bit integers, for speed.

The convolutions' weights are stored as 8-bit integers per output channel, and each
convolution's input is rounded to 8 bits on a range read from training images
(onnxruntime's static QDQ quantisation).  onnxruntime then runs integer kernels: on 2
cores of session 15's AMD EPYC (with VNNI), v10 read 133 answer boxes a second and its
quantised copy v21 233 (``benchmark``; docs/models-hme.md, "Shipped v21").  The rest
of the graph, the pooling and the embedding, stays in float32.

Two choices are not onnxruntime's defaults (cosines to v10's float embeddings over the
938 validation images, session 15):

* activation ranges cover the 99.99th percentile of what the training images give,
  not the extremes, which one rare large value would widen, coarsening every other
  value (an early trial, on 64 of the images the ranges were read on: min-max ranges
  mean cosine 0.984, worst 0.84; percentile ranges 0.998, worst 0.99);
* weights use 7 of their 8 bits, so that CPUs without VNNI, whose 8-bit
  multiply-adds sum pairs into 16 bits and can saturate, compute what CPUs with it
  compute (the usual workaround; OpenVINO documents the same one).  Here it also
  kept the embeddings closer: mean 0.9964 and 1st percentile 0.971, against 0.9948
  and 0.931 with all 8 bits.

The quantised graph is checked against its source on held-out images, then its
distances are calibrated and it is validated like any derived model::

    python -m plom_clustering_plugin.training.hme_quantise \
        --model weights/hme-symbols-v10.onnx --data /work/shared/data/crohme-dev \
        --out /work/hme-out/v21 --version 21
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import hme_data
from .hme_views import require_one_input_and_output

#: Training images whose activations set the 8-bit ranges.
RANGE_IMAGES = 256
#: Share of each activation's values inside its range, in percent (the rest clip).
PERCENTILE = 99.99
#: Lowest mean cosine accepted between held-out images' quantised and float embeddings.
#: A mean, not a minimum: lone small symbols (an alpha, an o) move most, to about 0.9,
#: and the harness's exam figures did not move with them (docs/models-hme.md, v21).
MIN_MEAN_COSINE = 0.99


def range_rows(total: int, count: int, seed: int) -> np.ndarray:
    """A seeded, sorted sample of ``count`` of ``total`` rows (all when fewer)."""
    rng = np.random.default_rng([seed, 15])
    return np.sort(rng.choice(total, min(count, total), replace=False))


def quantise(source: Path, out: Path, ink: np.ndarray) -> None:
    """Write ``source`` with integer convolutions to ``out``, ranges read on ``ink``.

    Raises:
        ValueError: the graph is not shaped like hme-symbols', or ``ink`` is empty.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    graph = onnx.load(str(source)).graph
    require_one_input_and_output(graph)
    if not len(ink):
        raise ValueError("no images to read the activation ranges from")
    name = graph.input[0].name
    # onnxruntime's percentile collector stacks the batches: all must be one size.
    batches = [{name: ink[i : i + 1]} for i in range(len(ink))]

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self._left = iter(batches)

        def get_next(self):
            return next(self._left, None)

    with tempfile.TemporaryDirectory() as tmp:
        # Shapes inferred and constants folded first, as onnxruntime advises.
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Batches(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": PERCENTILE},
        )


def cosines(
    source: Path, quantised: Path, canvases: np.ndarray, threads: int = 2
) -> np.ndarray:
    """Each uint8 canvas's cosine between the quantised and the float embedding."""
    from .hme_distil import onnx_embeddings

    a, b = (onnx_embeddings(p, canvases, threads) for p in (source, quantised))
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    hme_data.add_source_model_options(parser)
    hme_data.add_derived_model_options(parser)
    parser.add_argument(
        "--range-images",
        type=int,
        default=RANGE_IMAGES,
        help=f"training images that set the 8-bit ranges (default {RANGE_IMAGES})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Quantise, check, calibrate and validate; returns a process exit code."""
    from .hme_report import write_derived
    from .hme_train import to_input

    args = parse_args(argv)
    source, entry = hme_data.source_model(args)
    try:
        hme_data.check_source_split(args, entry)
        onnx_path = hme_data.derived_onnx_path(args, [source], "the model it quantises")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data = hme_data.load_source_split(args, entry.input.canvas, entry.input.dot_reach)
    train, calibration, _ = data.sets()
    rows = range_rows(len(train), args.range_images, args.seed)
    ranges = to_input(train.canvases[rows]).numpy()
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        quantise(source, onnx_path, ranges)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # Images the ranges were not read on: the held-out calibration rows if any.
    check = (calibration or train).canvases
    agree = cosines(source, onnx_path, check, args.threads)
    if agree.mean() < MIN_MEAN_COSINE:
        onnx_path.unlink()
        print(
            f"error: the embeddings moved to cosine {agree.mean():.4f} on average from"
            f" the float model's (at least {MIN_MEAN_COSINE} needed); the file was"
            " not kept",
            file=sys.stderr,
        )
        return 1
    print(
        f"wrote {onnx_path}: cosine to the float model {agree.mean():.4f} on average,"
        f" {np.percentile(agree, 1):.4f} at the 1st percentile, {agree.min():.4f} at"
        f" worst, over {len(agree)} held-out images",
        flush=True,
    )
    write_derived(
        onnx_path,
        entry,
        data,
        args,
        module="hme_quantise",
        argv=argv,
        description=(
            f"hme-symbols v{entry.version} (sha256 {entry.sha256[:12]}) with 8-bit"
            f" integer convolutions (weights per channel, activation ranges from"
            f" {len(ranges)} training images). v{entry.version}:"
            f" {entry.description or ''}"
        ),
        training={
            "source": f"hme-symbols v{entry.version}",
            "source_sha256": entry.sha256,
            "quantisation": {
                "format": "onnxruntime static QDQ, Conv only",
                "weights": "int8 per output channel, 7-bit range",
                "activations": f"uint8, {PERCENTILE}th percentile ranges",
                "range_images": len(ranges),
            },
            "cosine_to_source": {
                "mean": round(float(agree.mean()), 5),
                "percentile_1": round(float(np.percentile(agree, 1)), 5),
                "min": round(float(agree.min()), 5),
                "images": len(agree),
            },
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
