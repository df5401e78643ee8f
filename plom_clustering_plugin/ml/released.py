# SPDX-License-Identifier: AGPL-3.0-or-later
"""The right embedder class for each released model.

Django-free, so the job, the evaluation harness and the benchmark share it.
"""

from __future__ import annotations

from pathlib import Path

from .embedders import Embedder
from .manifest import ModelEntry


def embedder_from_entry(
    entry: ModelEntry, path: str | Path, *, threads: int = 1, batch_size: int = 64
) -> Embedder:
    """Wrap a verified weights file in its embedder.

    Letters need mark selection and the reject output; expressions need the calibrated
    distances; any other model gets the generic ONNX embedder.
    """
    options = {"threads": threads, "batch_size": batch_size}
    if entry.name == "mcq-letters":
        from .letters import LetterEmbedder

        return LetterEmbedder.from_file(entry, path, **options)
    from .onnx_runtime import OnnxEmbedder

    embedder = OnnxEmbedder.from_file(entry, path, **options)
    if entry.name == "hme-symbols":
        from .hme import HmeEmbedder

        return HmeEmbedder(entry, embedder.session, batch_size=embedder.batch_size)
    return embedder


def checkout_weights() -> Path | None:
    """The ``weights/`` folder of a source checkout (a local mirror), if there is one."""
    folder = Path(__file__).resolve().parents[2] / "weights"
    return folder if folder.is_dir() else None
