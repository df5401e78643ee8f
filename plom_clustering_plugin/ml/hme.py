# SPDX-License-Identifier: AGPL-3.0-or-later
"""The handwritten-math embedder: symbol maps pooled by region, compared by cosine.

The ``hme-symbols`` ONNX graph does all the work (two input scales, sigmoid symbol maps,
whole-image and 3x7 grid max pooling, L2 per level): its output is the embedding.  This
class adds what the generic :class:`~.onnx_runtime.OnnxEmbedder` lacks: the calibrated
"surely different" distance, read from the manifest entry's metrics.

Example::

    embedder = HmeEmbedder.from_files("weights/hme-symbols-v1.onnx",
                                      "weights/hme-symbols-v1.entry.json")
    vectors = embedder.embed(prepared_crops)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .clustering import DIFFERENT_ANSWER_DISTANCE
from .manifest import ModelEntry, parse_manifest
from .onnx_runtime import OnnxEmbedder, load_session

#: The manifest name of the model.
MODEL_NAME = "hme-symbols"
#: Where the calibrated "surely different" distance sits in the entry (the manifest
#: schema has no field for it).
DIFFERENT_KEY = "different_answer_distance"


class HmeEmbedder(OnnxEmbedder):
    """An :class:`~.embedders.Embedder` for handwritten math expressions."""

    def __init__(
        self, entry: ModelEntry, session: Any, *, batch_size: int = 64
    ) -> None:
        """Wrap a loaded ``hme-symbols`` session (see :class:`OnnxEmbedder`)."""
        super().__init__(entry, session, batch_size=batch_size)
        self.different_answer_distance = float(
            entry.metrics.get(DIFFERENT_KEY, DIFFERENT_ANSWER_DISTANCE)
        )

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
