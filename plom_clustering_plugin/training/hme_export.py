# SPDX-License-Identifier: AGPL-3.0-or-later
"""Export the HME net to ONNX (embedding out), check it, and write its manifest entry."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from .hme_model import EmbeddingOnly, HmeNet

#: The graph's input name, as the manifest entry states it.
INPUT_NAME = "ink"
#: Largest ORT-vs-torch difference accepted (both fp32).
TOLERANCE = 1e-4


def export_onnx(net: HmeNet, path: Path, canvas: tuple[int, int]) -> float:
    """Write the embedding graph (dynamic batch, opset 17) and check ORT against torch.

    Returns:
        The largest absolute difference between onnxruntime and torch outputs.
    """
    import onnxruntime as ort

    graph = EmbeddingOnly(net).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(3, 1, *canvas, generator=torch.Generator().manual_seed(0))
    example = (example > 0.9).float()  # sparse ink, like a real crop
    with warnings.catch_warnings():  # the grid's bins are constants by design
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        _export(graph, example, path)
    with torch.no_grad():
        expected = graph(example).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: example.numpy()})[0]
    difference = float(np.abs(got - expected).max())
    if difference > TOLERANCE:
        raise RuntimeError(f"ONNX and torch disagree by {difference:.2e}")
    return difference


def _export(graph: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        graph,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=["embedding"],
        dynamic_axes={INPUT_NAME: {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_entry(
    onnx_path: Path,
    canvas: tuple[int, int],
    *,
    version: str,
    command: str,
    seed: int,
    training_data: str,
    metrics: dict,
    same_answer_distance: float,
    different_answer_distance: float,
    description: str,
    dot_reach: int = 0,
) -> Path:
    """Write ``<model>.entry.json`` next to the ONNX file, in the manifest's schema.

    ``dot_reach`` goes into the input spec when it is not 0 (the crops' specks near
    writing kept, as the network was trained), so earlier entries keep their bytes.
    """
    reading = {"dot_reach": dot_reach} if dot_reach else {}
    entry = {
        "name": "hme-symbols",
        "version": version,
        "file": onnx_path.name,
        "sha256": sha256_of(onnx_path),
        "size": onnx_path.stat().st_size,
        "urls": [f"file://{onnx_path.name}"],
        "input": {
            "name": INPUT_NAME,
            "shape": [None, 1, canvas[0], canvas[1]],
            "dtype": "float32",
            "normalisation": {
                "ink": "white-on-black",
                "range": [0, 1],
                "mean": 0.0,
                "std": 1.0,
            },
            **reading,
        },
        "output": {"meaning": "embedding", "labels": None},
        "licence": (
            "Weights trained on CROHME 2014 data (CC BY-NC-SA 3.0): non-commercial, "
            "share-alike; code AGPL-3.0-or-later"
        ),
        "training_data": training_data,
        "training_command": command,
        "seed": seed,
        "metrics": metrics,
        "same_answer_distance": same_answer_distance,
        "different_answer_distance": different_answer_distance,
        "description": description,
    }
    out = onnx_path.with_suffix(".entry.json")
    out.write_text(json.dumps(entry, indent=2) + "\n", encoding="utf-8")
    return out
