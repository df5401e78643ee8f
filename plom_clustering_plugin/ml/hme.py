# SPDX-License-Identifier: AGPL-3.0-or-later
"""The handwritten-math embedder: symbol maps pooled by region, compared by cosine.

The ``hme-symbols`` ONNX graph does all the work (two input scales, sigmoid symbol maps,
whole-image and 3x7 grid max pooling, L2 per level): its output is the embedding, and
the entry's calibrated ``same_answer_distance`` / ``different_answer_distance`` tell the
clusterer how to read it.  This class adds loading from a lone ``*.entry.json``.

Example::

    embedder = HmeEmbedder.from_files("weights/hme-symbols-v1.onnx",
                                      "weights/hme-symbols-v1.entry.json")
    vectors = embedder.embed(prepared_crops)
"""

from __future__ import annotations

import json
from pathlib import Path

from .manifest import ModelEntry, parse_manifest
from .onnx_runtime import OnnxEmbedder, load_session

#: The manifest name of the model.
MODEL_NAME = "hme-symbols"


class HmeEmbedder(OnnxEmbedder):
    """An :class:`~.embedders.Embedder` for handwritten math expressions."""

    @classmethod
    def from_files(
        cls,
        onnx_path: str | Path,
        entry_path: str | Path,
        *,
        threads: int = 1,
        batch_size: int = 64,
    ) -> HmeEmbedder:
        """Load a model file with its manifest entry (a lone ``*.entry.json``)."""
        entry = read_entry(entry_path)
        session = load_session(
            onnx_path, entry.sha256, threads=threads, input_spec=entry.input
        )
        return cls(entry, session, batch_size=batch_size)


def read_entry(path: str | Path) -> ModelEntry:
    """Parse one manifest entry stored on its own, with the manifest's own checks."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return parse_manifest({"schema_version": 1, "models": [raw]}, Path(path)).models[0]
