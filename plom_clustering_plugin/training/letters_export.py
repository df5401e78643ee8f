# SPDX-License-Identifier: AGPL-3.0-or-later
"""Export the letter network to ONNX and check onnxruntime agrees with torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .letters_model import ExportWrapper, LetterNet

OPSET = 17


def export_onnx(net: LetterNet, path: Path, *, check: bool = True) -> float:
    """Write ``path`` (input ``input`` (N,1,64,64); outputs ``probabilities``, ``reject``).

    Returns:
        The largest absolute difference between torch and onnxruntime on a check batch
        (0.0 when ``check`` is False).

    Raises:
        AssertionError: the two disagree by more than 1e-4.
    """
    wrapper = ExportWrapper(net).eval()
    example = torch.zeros(2, 1, 64, 64)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(
        wrapper,
        (example,),
        str(temp),
        input_names=["input"],
        output_names=["probabilities", "reject"],
        dynamic_axes={
            "input": {0: "batch"},
            "probabilities": {0: "batch"},
            "reject": {0: "batch"},
        },
        opset_version=OPSET,
        dynamo=False,
    )
    temp.replace(path)
    if not check:
        return 0.0
    import onnxruntime as ort

    batch = torch.rand(16, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    batch = (batch > 0.8).float()
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(batch)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities", "reject"], {"input": batch.numpy()})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(expected, got, strict=True))
    assert diff < 1e-4, f"onnxruntime and torch differ by {diff}"
    return diff
