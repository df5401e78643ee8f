# SPDX-License-Identifier: AGPL-3.0-or-later
"""ONNX models: one cached inference session per process, and a generic embedder.

Huey runs several worker processes, each loading a model once: sessions are cached per
(file, hash, threads), run on the CPU provider only, with few threads and no spinning so
that the workers do not fight over cores.  ``onnxruntime`` is imported on first use.

Example::

    from plom_clustering_plugin.ml.onnx_runtime import load_embedder
    embedder = load_embedder("mcq-letters")  # ensures the weights, then loads them
    vectors = embedder.embed(prepared_crops)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .embedders import l2_normalise
from .manifest import InputSpec, Manifest, ModelEntry, Normalisation, load_manifest
from .preprocess import PreparedCrop, fit_to_canvas

CPU_PROVIDER = "CPUExecutionProvider"
#: onnxruntime's type string for each manifest dtype.
ORT_TYPES = {
    "float32": "tensor(float)",
    "float16": "tensor(float16)",
    "float64": "tensor(double)",
}

_sessions: dict[tuple[str, str, int], Any] = {}
_sessions_lock = threading.Lock()


class OnnxModelError(RuntimeError):
    """An ONNX file cannot be loaded, or does not match its manifest entry."""


def load_session(
    path: str | Path,
    sha256: str,
    *,
    threads: int = 1,
    input_spec: InputSpec | None = None,
) -> Any:
    """Return this process's ``InferenceSession`` for a verified weights file.

    Args:
        path: the ONNX file (already verified, e.g. by :func:`weights.ensure`).
        sha256: its hash, part of the cache key so a replaced file is reloaded.
        threads: onnxruntime intra-op threads.
        input_spec: if given, the model's input is checked against it.

    Raises:
        OnnxModelError: the file cannot be loaded or its input differs from the spec.
    """
    key = (str(Path(path).resolve()), sha256, max(1, int(threads)))
    with _sessions_lock:  # one load per key, even when threads race to the first use
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = _create_session(Path(path), key[2])
    if input_spec is not None:  # cheap, and callers may bring different entries
        check_input(session, input_spec, Path(path).name)
    return session


def clear_sessions() -> None:
    """Forget every cached session (tests, or after weights were replaced)."""
    with _sessions_lock:
        _sessions.clear()


def _create_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    providers = [p for p in ort.get_available_providers() if p == CPU_PROVIDER]
    if not providers:
        raise OnnxModelError(
            f"onnxruntime offers no {CPU_PROVIDER} (only {ort.get_available_providers()})"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle workers must not burn CPU waiting for work that another process is doing.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=providers
        )
    except Exception as err:  # onnxruntime raises its own untyped errors
        raise OnnxModelError(f"cannot load the ONNX model {path}: {err}") from err


def check_input(session: Any, spec: InputSpec, where: str) -> None:
    """Check that the model takes the input the manifest describes.

    Raises:
        OnnxModelError: naming the model, the input and what differs.
    """
    inputs = session.get_inputs()
    names = [i.name for i in inputs]
    if spec.name not in names:
        raise OnnxModelError(
            f"{where}: the model has no input {spec.name!r} (its inputs: {names});"
            " fix input.name in the manifest"
        )
    if len(inputs) != 1:
        raise OnnxModelError(f"{where}: the model takes {len(inputs)} inputs, not 1")
    model_input = inputs[0]
    model_shape = list(model_input.shape)
    wanted = [-1 if d is None else d for d in spec.shape]
    if len(model_shape) != len(spec.shape):
        raise OnnxModelError(
            f"{where}: input {spec.name!r} has rank {len(model_shape)} {model_shape},"
            f" the manifest says rank {len(spec.shape)} {wanted}"
        )
    for axis, (model_dim, spec_dim) in enumerate(
        zip(model_shape, spec.shape, strict=True)
    ):
        model_fixed = isinstance(model_dim, int) and model_dim > 0  # else symbolic
        if model_fixed and model_dim != spec_dim:
            raise OnnxModelError(
                f"{where}: input {spec.name!r} axis {axis} is {model_dim} in the model,"
                f" {'dynamic' if spec_dim is None else spec_dim} in the manifest"
                f" (model shape {model_shape}, manifest shape {wanted})"
            )
    if model_input.type != ORT_TYPES[spec.dtype]:
        raise OnnxModelError(
            f"{where}: input {spec.name!r} is {model_input.type},"
            f" the manifest says {spec.dtype} ({ORT_TYPES[spec.dtype]})"
        )


def normalise(canvases: np.ndarray, normalisation: Normalisation) -> np.ndarray:
    """Map ink canvases (1 = ink) to the network's input scale, as the manifest says."""
    values = canvases if normalisation.ink == "white-on-black" else 1.0 - canvases
    low, high = normalisation.range
    values = low + values * (high - low)
    return (values - normalisation.mean) / normalisation.std


def outputs_to_vectors(raw: np.ndarray, meaning: str) -> np.ndarray:
    """Turn network outputs into L2-normalised rows that cosine distance suits.

    Probabilities become their square roots (so cosine compares them like the Hellinger
    distance); logits are soft-maxed first; embeddings are used as they are.
    """
    raw = np.asarray(raw, np.float64).reshape(len(raw), -1)
    if meaning == "logits":
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        raw = shifted / shifted.sum(axis=1, keepdims=True)
    if meaning in ("logits", "probabilities"):
        raw = np.sqrt(np.clip(raw, 0.0, None))
    return l2_normalise(np.nan_to_num(raw))


class OnnxEmbedder:
    """An :class:`~.embedders.Embedder` backed by any single-input ONNX model.

    Each crop's ink is fitted onto the manifest's canvas, normalised as the manifest says,
    and run in batches along the dynamic batch axis.  Blank crops give zero rows.
    """

    def __init__(
        self, entry: ModelEntry, session: Any, *, batch_size: int = 64
    ) -> None:
        """Wrap a loaded session.

        Args:
            entry: the model's manifest entry (input spec, output meaning, labels).
            session: an ``onnxruntime.InferenceSession`` of that entry's file.
            batch_size: crops per ``session.run``.
        """
        check_input(session, entry.input, entry.file)
        self.entry = entry
        self.session = session
        self.batch_size = max(1, int(batch_size))
        self.name = entry.name
        self.version = entry.version
        self.sha256: str | None = entry.sha256
        self.class_names = list(entry.output.labels) if entry.output.labels else None
        self.same_answer_distance = entry.same_answer_distance
        self.different_answer_distance = entry.different_answer_distance
        self.dot_reach = entry.input.dot_reach
        if "review_confidence" in entry.metrics:  # calibrated with the model
            self.review_confidence = float(entry.metrics["review_confidence"])
        self._output_name = session.get_outputs()[0].name
        self._dim: int | None = None

    @classmethod
    def from_file(
        cls,
        entry: ModelEntry,
        path: str | Path,
        *,
        threads: int = 1,
        batch_size: int = 64,
    ) -> OnnxEmbedder:
        """Load (or reuse) the session of a verified weights file."""
        session = load_session(
            path, entry.sha256, threads=threads, input_spec=entry.input
        )
        return cls(entry, session, batch_size=batch_size)

    def embed(self, crops: Sequence[PreparedCrop]) -> np.ndarray:
        """Return ``(len(crops), dim)`` float32 L2-normalised rows (blank crops: zeros)."""
        written = [i for i, crop in enumerate(crops) if not crop.is_blank]
        chunks = [
            self._run([crops[i].ink for i in written[start : start + self.batch_size]])
            for start in range(0, len(written), self.batch_size)
        ]
        dim = chunks[0].shape[1] if chunks else self._output_dim()
        out = np.zeros((len(crops), dim), np.float32)
        if chunks:
            out[written] = np.concatenate(chunks)
        return out

    def _run(self, inks: list[np.ndarray]) -> np.ndarray:
        spec = self.entry.input
        height, width = spec.canvas
        batch = np.stack([fit_to_canvas(ink, height, width) for ink in inks])
        batch = normalise(batch, spec.normalisation)
        if len(spec.shape) == 4:
            batch = batch[:, np.newaxis]
        batch = np.ascontiguousarray(batch, dtype=spec.dtype)
        raw = self.session.run([self._output_name], {spec.name: batch})[0]
        vectors = outputs_to_vectors(raw, self.entry.output.meaning)
        self._dim = vectors.shape[1]
        return vectors

    def _output_dim(self) -> int:
        """The output width, without crops: from the graph, the labels, or one blank run."""
        if self._dim is None:
            declared = self.session.get_outputs()[0].shape[-1]
            if isinstance(declared, int) and declared > 0:
                self._dim = declared
            elif self.class_names:
                self._dim = len(self.class_names)
            else:
                self._run([np.zeros((1, 1), np.float32)])
        return int(self._dim)


def load_embedder(
    name: str,
    version: str | None = None,
    *,
    threads: int = 1,
    batch_size: int = 64,
    manifest: Manifest | str | Path | None = None,
    **ensure_options: Any,
) -> OnnxEmbedder:
    """Ensure a model's weights are cached and verified, then wrap them as an embedder.

    Args:
        name: the model's manifest name.
        version: its version; None means the manifest's default.
        threads: onnxruntime intra-op threads.
        batch_size: crops per run.
        manifest: a parsed manifest or its path; None is the packaged one.
        **ensure_options: passed to :func:`weights.ensure_entry` (``cache_dir``,
            ``base_url``, ``download``, ``progress``, ``policy``).
    """
    from .weights import ensure_entry

    parsed = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    entry = parsed.get_entry(name, version)
    path = ensure_entry(entry, **ensure_options)
    return OnnxEmbedder.from_file(entry, path, threads=threads, batch_size=batch_size)
