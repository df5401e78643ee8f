# SPDX-License-Identifier: AGPL-3.0-or-later
"""Embedders: prepared crops in, one L2-normalised vector per crop out.

Every embedder, simple or ONNX-backed, has the same small interface so that the job, the
evaluation harness and the benchmark can swap them by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from scipy import ndimage

from .preprocess import PreparedCrop, fit_to_canvas


@runtime_checkable
class Embedder(Protocol):
    """What the pipeline needs from an embedder.

    Attributes:
        name: the model's name, as recorded on the job (e.g. ``"pixels"``).
        version: the model's version string.
        sha256: hash of the weights file, or None for weight-free embedders.
        class_names: for classifier-style embedders, the class of each output dimension
            (used to name clusters, e.g. ``"B"``); None otherwise.
        same_answer_distance: cosine distance under which two answers are surely the same;
            the clusterer uses it to recognise a question where everyone agrees.
            An embedder may also set ``different_answer_distance``, above which two
            answers are never grouped (default 0.5), and ``dot_reach``, the
            ``dot_reach`` its crops are prepared with (default 0).
    """

    name: str
    version: str
    sha256: str | None
    class_names: Sequence[str] | None
    same_answer_distance: float

    def embed(self, crops: Sequence[PreparedCrop]) -> np.ndarray:
        """Return a float32 array ``(len(crops), dim)`` of L2-normalised rows."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class PixelEmbedder:
    """A weight-free embedder: the ink, scaled onto a small canvas, blurred and centred.

    It groups answers that look alike pixel for pixel (copies of one drawing, printed
    text, the same stamp) and serves as the pipeline's fallback and as a baseline.
    """

    name = "pixels"
    version = "1"
    sha256 = None
    class_names = None
    same_answer_distance = 0.08
    different_answer_distance = 0.5

    def __init__(self, height: int = 32, width: int = 96, blur: float = 1.0) -> None:
        """Set the canvas size and the blur (in canvas pixels) that absorbs jitter."""
        self.height = height
        self.width = width
        self.blur = blur

    def embed(self, crops: Sequence[PreparedCrop]) -> np.ndarray:
        """Embed prepared crops; blank crops give a zero vector."""
        out = np.zeros((len(crops), self.height * self.width), np.float32)
        for i, crop in enumerate(crops):
            if crop.is_blank:
                continue
            canvas = fit_to_canvas(crop.ink, self.height, self.width)
            if self.blur:
                canvas = ndimage.gaussian_filter(canvas, self.blur)
            out[i] = canvas.ravel()
        return l2_normalise(out)
