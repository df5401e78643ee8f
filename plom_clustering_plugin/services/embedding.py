# SPDX-License-Identifier: AGPL-3.0-or-later
"""Which embedder a job of each kind uses, and whether its weights can be had.

Each kind maps to a model of ``weights_manifest.json``.  While the manifest lists no
model for a kind, its jobs use the weight-free pixel embedder (recorded on the job as
model ``pixels``), so a fresh checkout still clusters.
"""

from __future__ import annotations

from collections.abc import Callable

from ..conf import PREFIX, clustering_settings
from ..ml.embedders import Embedder, PixelEmbedder
from ..ml.manifest import ModelEntry, UnknownModelError, load_manifest
from .errors import JobError

#: The manifest model each kind of answer uses.
MODEL_FOR_KIND = {"mcq": "mcq-letters", "hme": "hme-symbols"}


def pinned_version(kind: str) -> str | None:
    """The model version the settings pin for a kind (``PLOM_CLUSTERING_HME_VERSION``)."""
    pinned = getattr(clustering_settings, f"{kind.upper()}_VERSION")
    if pinned is None or not str(pinned).strip():  # unset, or set to "" in the shell
        return None
    return str(pinned).strip()


def model_entry_for(kind: str) -> ModelEntry | None:
    """The pinned, else the default, manifest entry for a kind; None when there is none.

    Raises:
        JobError: unknown kind, or a pinned version the manifest does not list (a
            pinned model never silently becomes another).
    """
    if kind not in MODEL_FOR_KIND:
        raise JobError(f"Unknown kind {kind!r}: use 'mcq' (letters) or 'hme' (math).")
    version = pinned_version(kind)
    try:
        return load_manifest(clustering_settings.MANIFEST).get_entry(
            MODEL_FOR_KIND[kind], version
        )
    except UnknownModelError as err:
        if version is not None:
            raise JobError(
                f"{err} ({PREFIX}{kind.upper()}_VERSION pins version {version})."
            ) from err
        return None


def check_weights_available(kind: str) -> None:
    """Refuse, before queueing, a job whose weights cannot be had (downloads off).

    Raises:
        JobError: with the weights module's message (which file, which folder, and the
            command that fetches or imports it).
    """
    from ..ml import weights

    entry = model_entry_for(kind)
    if entry is None or clustering_settings.DOWNLOAD:
        return
    cache = clustering_settings.model_dir()
    if weights.entry_status(entry, cache_dir=cache) != weights.VERIFIED:
        try:
            weights.ensure_entry(entry, cache_dir=cache, download=False)
        except weights.WeightsError as err:
            raise JobError(str(err)) from err


def embedder_for(
    kind: str, progress: Callable[[int, int], None] | None = None
) -> Embedder:
    """Return a ready embedder for a job kind, fetching verified weights if needed.

    Args:
        kind: ``mcq`` or ``hme``.
        progress: called as ``progress(done_bytes, total_bytes)`` while downloading.

    Raises:
        JobError: unknown kind.
        WeightsError: the weights cannot be had (its message says what to do).
    """
    entry = model_entry_for(kind)
    if entry is None:
        return PixelEmbedder()
    from ..ml.released import embedder_from_entry
    from ..ml.weights import ensure_entry
    from ..weights_django import weights_options

    path = ensure_entry(entry, progress=progress, **weights_options())
    return embedder_from_entry(
        entry,
        path,
        threads=clustering_settings.ONNX_THREADS,
        batch_size=clustering_settings.BATCH_SIZE,
    )
