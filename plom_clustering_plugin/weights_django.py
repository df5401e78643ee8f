# SPDX-License-Identifier: AGPL-3.0-or-later
"""The Django side of the weights cache: read ``PLOM_CLUSTERING_*`` settings, then defer.

:mod:`plom_clustering_plugin.ml.weights` knows nothing of Django; these helpers feed it
the plugin's settings (cache folder inside Plom's ``PLOM_MODEL_CACHE``, mirror URL,
download switch, ONNX threads, batch size).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .conf import clustering_settings
from .ml.manifest import Manifest

if TYPE_CHECKING:
    from .ml.onnx_runtime import OnnxEmbedder


def weights_options() -> dict[str, Any]:
    """``cache_dir``, ``base_url`` and ``download`` as the settings give them."""
    return {
        "cache_dir": clustering_settings.model_dir(),
        "base_url": clustering_settings.WEIGHTS_URL,
        "download": clustering_settings.DOWNLOAD,
    }


def ensure_weights(name: str, version: str | None = None, **overrides: Any) -> Path:
    """:func:`ml.weights.ensure` with the plugin's settings (keywords override them)."""
    from .ml.weights import ensure

    return ensure(name, version, **{**weights_options(), **overrides})


def load_onnx_embedder(
    name: str,
    version: str | None = None,
    *,
    manifest: Manifest | str | Path | None = None,
    **overrides: Any,
) -> OnnxEmbedder:
    """An :class:`ml.onnx_runtime.OnnxEmbedder` with the plugin's threads and batch size."""
    from .ml.onnx_runtime import load_embedder

    return load_embedder(
        name,
        version,
        threads=clustering_settings.ONNX_THREADS,
        batch_size=clustering_settings.BATCH_SIZE,
        manifest=manifest,
        **{**weights_options(), **overrides},
    )
