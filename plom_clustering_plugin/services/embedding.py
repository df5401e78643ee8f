# SPDX-License-Identifier: AGPL-3.0-or-later
"""Which embedder a job of each kind uses.

Until trained weights are released both kinds use the weight-free pixel embedder; the
trained ONNX models will register here by kind.
"""

from __future__ import annotations

from ..ml.embedders import Embedder, PixelEmbedder


def embedder_for(kind: str) -> Embedder:
    """Return a ready embedder for a job kind (``mcq`` or ``hme``).

    Raises:
        ValueError: unknown kind.
    """
    if kind not in ("mcq", "hme"):
        raise ValueError(f"Unknown kind of answer {kind!r}: use 'mcq' or 'hme'.")
    return PixelEmbedder()
