# SPDX-License-Identifier: AGPL-3.0-or-later
r"""Join trained ``hme-symbols`` graphs into one that reads each crop with all of them.

The joined graph takes the same canvas, runs every member on it and returns the
members' unit embeddings side by side, renormalised: the cosine between two answers
is then the mean of the members' cosines.  Tried on v10 + v18 (session 14): no gain
at the true k or on the exams (docs/models-hme.md, experiments table, "two networks
side by side"); the tool stays for members that differ more.

The members must share the input spec and the training run's data split (``--seed``,
``--val-share``, ``--calib-share``), so that the held-out calibration expressions are
unseen by every member.  The weights are untouched; the distances are calibrated
again and the file gets its own version and entry::

    python -m plom_clustering_plugin.training.hme_ensemble \
        --model weights/hme-symbols-v10.onnx --model weights/hme-symbols-v18.onnx \
        --data /work/shared/data/crohme-dev --out /work/hme-out/e1018 --version 90
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from ..ml.hme import read_entry
from ..ml.manifest import ModelEntry
from . import hme_data
from .hme_views import probe_batch, require_one_input_and_output

#: Largest joined-graph-vs-numpy difference accepted (both fp32).
TOLERANCE = 1e-5
#: The joined graph's own names; member ``i``'s names get the prefix ``member{i}/``.
_JOINED = "ensemble/"


def check_members(entries: list[ModelEntry]) -> None:
    """A ValueError unless the members can be joined and calibrated together."""
    if len(entries) < 2:
        raise ValueError("an ensemble needs at least two --model files")
    first = entries[0]
    for entry in entries[1:]:
        if entry.input != first.input:
            raise ValueError(
                f"v{entry.version} reads another input than v{first.version}"
                f" ({entry.input} against {first.input})"
            )
        if (entry.seed, entry.training_data) != (first.seed, first.training_data):
            raise ValueError(
                f"v{entry.version} was trained on another split than v{first.version}:"
                " the calibration expressions would not be unseen by both"
            )


def join_models(models: list, input_name: str, output_name: str):
    """One ``onnx.ModelProto`` that runs every member and concatenates their outputs.

    Each member is an ``onnx.ModelProto`` with one input and one output (unit
    embeddings); the joined graph keeps ``input_name`` and ``output_name``, so the
    manifest entry's input spec and the embedder are unchanged.
    """
    import onnx
    from onnx import compose, helper

    opsets = {tuple((o.domain, o.version) for o in m.opset_import) for m in models}
    if len(opsets) != 1:
        raise ValueError("the members were exported at different ONNX opsets")
    nodes, initializers, outputs = [], [], []
    for i, model in enumerate(models):
        require_one_input_and_output(model.graph)
        prefixed = compose.add_prefix(model, f"member{i}/").graph
        inner_input = prefixed.input[0].name
        for node in prefixed.node:
            node.input[:] = [input_name if n == inner_input else n for n in node.input]
        nodes.extend(prefixed.node)
        initializers.extend(prefixed.initializer)
        outputs.append(prefixed.output[0].name)
    joined = _JOINED + "joined"
    nodes += [
        helper.make_node("Concat", outputs, [joined], axis=1),
        helper.make_node("LpNormalization", [joined], [output_name], axis=1, p=2),
    ]
    first = models[0].graph
    graph = helper.make_graph(
        nodes,
        "hme-symbols-ensemble",
        [first.input[0]],
        [
            helper.make_tensor_value_info(
                output_name, first.output[0].type.tensor_type.elem_type, [None, None]
            )
        ],
        initializer=initializers,
    )
    joined_model = helper.make_model(graph, opset_imports=list(models[0].opset_import))
    joined_model.ir_version = models[0].ir_version
    onnx.checker.check_model(joined_model)
    return joined_model


def check_join(members: list[Path], joined: Path, canvas: tuple[int, int]) -> float:
    """Largest difference between the joined graph and the members joined in numpy."""
    import onnxruntime as ort

    def session(path: Path):
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    batch = probe_batch(canvas)
    parts = []
    for path in members:
        member = session(path)
        parts.append(member.run(None, {member.get_inputs()[0].name: batch})[0])
    both = np.concatenate(parts, axis=1)
    expected = both / np.linalg.norm(both, axis=1, keepdims=True)
    outer = session(joined)
    got = outer.run(None, {outer.get_inputs()[0].name: batch})[0]
    return float(np.abs(got - expected).max())


def joined_source(entries: list[ModelEntry]) -> ModelEntry:
    """The members as one source for :func:`hme_report.write_derived`."""
    return dataclasses.replace(
        entries[0],
        version="+".join(e.version for e in entries),
        training_command=" && ".join(f"( {e.training_command} )" for e in entries),
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        required=True,
        action="append",
        help="a trained hme-symbols .onnx with its .entry.json beside it (repeat)",
    )
    hme_data.add_derived_model_options(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Join, check, calibrate and validate; returns a process exit code."""
    import onnx

    from .hme_report import write_derived

    args = parse_args(argv)
    paths = [Path(m) for m in args.model]
    entries = [read_entry(p.with_suffix(".entry.json")) for p in paths]
    try:
        check_members(entries)
        for entry in entries:
            hme_data.check_source_split(args, entry)
        onnx_path = hme_data.derived_onnx_path(args, paths, "a member")
        first = onnx.load(str(paths[0]))
        joined = join_models(
            [first] + [onnx.load(str(p)) for p in paths[1:]],
            first.graph.input[0].name,
            first.graph.output[0].name,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(joined, str(onnx_path))
    canvas = entries[0].input.canvas
    difference = check_join(paths, onnx_path, canvas)
    if difference > TOLERANCE:
        print(f"error: the joined graph is off by {difference:.1e}", file=sys.stderr)
        return 1
    print(f"wrote {onnx_path} (against numpy: {difference:.1e})", flush=True)

    data = hme_data.load_source_split(args, canvas, entries[0].input.dot_reach)
    names = " and ".join(f"v{e.version} (sha256 {e.sha256[:12]})" for e in entries)
    write_derived(
        onnx_path,
        joined_source(entries),
        data,
        args,
        module="hme_ensemble",
        argv=argv,
        description=(
            f"hme-symbols {names} side by side: each reads the crop, their unit"
            " embeddings are concatenated and renormalised (the cosine is the mean of"
            " theirs). "
            + " ".join(f"v{e.version}: {e.description or ''}" for e in entries)
        ),
        training={
            "members": [
                {"version": e.version, "sha256": e.sha256, "file": e.file}
                for e in entries
            ],
            "ensemble_vs_numpy": difference,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
