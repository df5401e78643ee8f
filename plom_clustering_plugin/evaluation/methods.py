# SPDX-License-Identifier: AGPL-3.0-or-later
"""The clustering methods the harness compares, registered by name.

A method takes one question's raw crops (plus the blank reference crop, when there is
one) and returns one label per answer.  ``pipeline`` is the project's own
``ml.pipeline.Pipeline``; the others wrap :mod:`.baselines`.  Methods that use the
project's embeddings take an embedder by name from :data:`EMBEDDERS`: a new embedder
(e.g. an ONNX model) needs one line there, then ``--method pipeline@NAME`` evaluates it
(and :data:`DEFAULT_EMBEDDER` makes it the default for plain ``pipeline``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from sklearn.cluster import AgglomerativeClustering

from ..ml.embedders import Embedder, PixelEmbedder, l2_normalise
from ..ml.pipeline import (
    ANSWERED,
    BLANK,
    LOW_CONFIDENCE,
    OTHER,
    Pipeline,
    PipelineResult,
)
from ..ml.preprocess import PreparedCrop, fit_to_canvas, prepare
from .baselines import (
    contour_features,
    contour_kmeans,
    kmeans_auto_k,
    kmeans_labels,
    pca_features,
    spectral_labels,
    upstream_sweep,
)


def released(name: str, version: str | None = None) -> Callable[[str], Embedder]:
    """A factory for a manifest model (default or ``version``), fetched and verified as a job does.

    The mirror is ``PLOM_CLUSTERING_WEIGHTS_URL``, else the checkout's ``weights/``.
    """

    def factory(kind: str) -> Embedder:
        import os

        from ..ml.manifest import load_manifest
        from ..ml.released import checkout_weights, embedder_from_entry
        from ..ml.weights import ensure_entry

        entry = load_manifest().get_entry(name, version)
        mirror = os.environ.get("PLOM_CLUSTERING_WEIGHTS_URL")
        if not mirror and checkout_weights():
            mirror = checkout_weights().as_uri()
        return embedder_from_entry(
            entry, ensure_entry(entry, base_url=mirror), threads=2
        )

    return factory


def candidate(entry_path: Path) -> Callable[[str], Embedder]:
    """A factory for a trained file not (yet) in the manifest: its lone entry beside it.

    The file is checked against the entry's sha256 like a released one.
    """

    def factory(kind: str) -> Embedder:
        from ..ml.hme import read_entry
        from ..ml.released import embedder_from_entry
        from ..ml.weights import sha256_of_file

        entry = read_entry(entry_path)
        path = entry_path.parent / entry.file
        if not path.is_file() or sha256_of_file(path) != entry.sha256:
            raise ValueError(f"{path} is missing or differs from {entry_path.name}")
        return embedder_from_entry(entry, path, threads=2)

    return factory


def embedder_factory(name: str) -> Callable[[str], Embedder]:
    """An embedder by name: registered, ``MODEL:VERSION`` or ``PATH.entry.json``.

    Raises:
        ValueError: none of those (the message lists the registered names).
    """
    if name in EMBEDDERS:
        return EMBEDDERS[name]
    if name.endswith(".entry.json"):
        if not Path(name).is_file():
            raise ValueError(f"no entry file {name!r}")
        return candidate(Path(name))
    model, colon, version = name.partition(":")
    if colon and model in RELEASED_MODELS:
        return released(model, version)
    raise ValueError(
        f"unknown embedder {name!r}; known: {', '.join(EMBEDDERS)}, "
        "MODEL:VERSION (a manifest version) or PATH.entry.json (a trained candidate)"
    )


#: Embedders by name: ``factory(kind) -> Embedder``.  Register new ones here.
#: Manifest models, by name (``NAME`` is the default version, ``NAME:VERSION`` another).
RELEASED_MODELS = ("mcq-letters", "hme-symbols")
EMBEDDERS: dict[str, Callable[[str], Embedder]] = {
    "pixels": lambda kind: PixelEmbedder(),
    **{name: released(name) for name in RELEASED_MODELS},
}
#: The embedder plain ``pipeline`` and ``upstream-plom`` use, per kind.
DEFAULT_EMBEDDER = {"hme": "hme-symbols", "mcq": "mcq-letters"}
#: Pixel canvas (height, width) of the PCA baseline, per kind.
PCA_CANVAS = {"hme": (32, 96), "mcq": (32, 32)}
#: Crops per ``embed`` call when a method embeds outside the pipeline.
EMBED_BATCH = 64
#: k-means++ starts when the pipeline's embeddings are clustered at the true k.
TRUE_K_STARTS = 10


@dataclass
class Clustered:
    """One method's answer for one question.

    Attributes:
        labels: one hashable per answer; answers that a marker must look at on their
            own (the "other" group, the review bin, unreadable) carry unique labels,
            and every blank answer carries the one label ``("blank",)``.
        review: answers put in the review bin (low confidence).
        other: answers put in the "other" group of one-offs.
        blank: answers found blank.
    """

    labels: list[Hashable]
    review: int = 0
    other: int = 0
    blank: int = 0


class Method(Protocol):
    """What the harness needs from a clustering method.

    Attributes:
        supports_true_k: whether :meth:`cluster` honours a given k.
        supports_auto_k: (optional, default True) False when choosing k would only
            repeat another method's rows.
    """

    supports_true_k: bool

    def cluster(
        self, crops: Sequence[np.ndarray], reference: np.ndarray | None, k: int | None
    ) -> Clustered:
        """Cluster one question's raw crops; ``k=None`` means choose k."""
        ...


def labels_from_pipeline(result: PipelineResult, count: int) -> Clustered:
    """Flatten a pipeline result into one label per answer key ``0..count-1``.

    Answers in a real group share its label; each answer of the "other" group, of the
    review bin, and each unreadable answer is a singleton; blanks form one cluster.
    """
    labels: list[Hashable] = [("missing", i) for i in range(count)]
    clustered = Clustered(labels)
    for answer in result.answers:
        key = int(answer.key)
        if answer.state == BLANK:
            labels[key] = ("blank",)
            clustered.blank += 1
        elif answer.state == LOW_CONFIDENCE:
            labels[key] = ("review", key)
            clustered.review += 1
        elif answer.state == ANSWERED and result.groups[answer.group].kind == OTHER:
            labels[key] = ("other", key)
            clustered.other += 1
        elif answer.state == ANSWERED:
            labels[key] = ("group", answer.group)
        else:  # unreadable or not scanned: looked at one by one
            labels[key] = (answer.state, key)
    return clustered


def _prepare_all(
    crops: Sequence[np.ndarray], reference: np.ndarray | None, dot_reach: int = 0
) -> list[PreparedCrop | None]:
    """The project's preprocessing of every crop; None where it cannot be read."""
    prepared: list[PreparedCrop | None] = []
    for crop in crops:
        try:
            prepared.append(prepare(crop, reference, dot_reach=dot_reach))
        except ValueError:
            prepared.append(None)
    return prepared


def _with_blanks(
    prepared: list[PreparedCrop | None],
    written: list[int],
    written_labels: Sequence[int],
) -> Clustered:
    """Labels for all answers: clustered written ones, one blank group, lone failures."""
    labels: list[Hashable] = [("unreadable", i) for i in range(len(prepared))]
    blank = 0
    for i, item in enumerate(prepared):
        if item is not None and item.is_blank:
            labels[i] = ("blank",)
            blank += 1
    for i, label in zip(written, written_labels, strict=True):
        labels[i] = ("group", int(label))
    return Clustered(labels, blank=blank)


def _written(prepared: list[PreparedCrop | None]) -> list[int]:
    return [i for i, p in enumerate(prepared) if p is not None and not p.is_blank]


def _k_for_written(k: int, prepared: list[PreparedCrop | None], written: list[int]):
    """The blank group is one of the k clusters; the written answers get the rest."""
    has_blank = any(p is not None and p.is_blank for p in prepared)
    return max(1, min(len(written), k - int(has_blank)))


def _embed(embedder: Embedder, crops: list[PreparedCrop]) -> np.ndarray:
    chunks = [
        embedder.embed(crops[start : start + EMBED_BATCH])
        for start in range(0, len(crops), EMBED_BATCH)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, 1), np.float32)


class PipelineMethod:
    """The project's pipeline: preprocess, embed, cluster, bins.

    With k given (the true number of answers: an evaluation protocol, never known in a
    job), the embeddings are grouped by KMeans with several k-means++ starts, as in the
    HSC paper's protocol: cutting the average-linkage tree at a forced k keeps outliers
    as singleton clusters and merges real groups instead (prior-art §10: purity
    0.61-0.74 against 0.91 for KMeans on the same features).  No "other" group or
    review bin then.
    """

    supports_true_k = True

    def __init__(self, kind: str, embedder: str | None = None, seed: int = 0) -> None:
        """Build the embedder by name (default: :data:`DEFAULT_EMBEDDER`)."""
        self.embedder = embedder_factory(embedder or DEFAULT_EMBEDDER[kind])(kind)
        self.seed = seed

    def cluster(
        self, crops: Sequence[np.ndarray], reference: np.ndarray | None, k: int | None
    ) -> Clustered:
        """Cluster one question's crops."""
        if k is None:
            pipeline = Pipeline(
                self.embedder,
                reference=reference,
                review_confidence=getattr(self.embedder, "review_confidence", 0.5),
            )
            for i, crop in enumerate(crops):
                pipeline.add(i, crop)
            return labels_from_pipeline(pipeline.finish(), len(crops))
        prepared = _prepare_all(
            crops, reference, getattr(self.embedder, "dot_reach", 0)
        )
        written = _written(prepared)
        if len(written) < 2:
            return _with_blanks(prepared, written, [0] * len(written))
        vectors = _embed(self.embedder, [prepared[i] for i in written])
        labels = self.true_k_labels(
            l2_normalise(vectors), _k_for_written(k, prepared, written)
        )
        return _with_blanks(prepared, written, labels)

    def true_k_labels(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """KMeans with several k-means++ starts at the given k."""
        return kmeans_labels(vectors, k, self.seed, attempts=TRUE_K_STARTS)


class PipelineWard(PipelineMethod):
    """The pipeline, but Ward linkage instead of KMeans when the true k is given.

    Automatic k would be the pipeline's own, so the harness skips it.  Ward merges the
    two groups whose union grows the spread least, so unlike KMeans it does not split a
    big answer with varied layouts to pay for it by merging two small ones elsewhere.
    """

    supports_auto_k = False

    def true_k_labels(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """Ward linkage cut at the given k (deterministic: no seed)."""
        return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(
            vectors
        )


class PipelineSpectral(PipelineMethod):
    """The pipeline, but spectral clustering instead of KMeans when the true k is given.

    A second reading of the same embeddings at the true k (automatic k is the
    pipeline's own, so the harness skips it): how much of KMeans' shortfall is the
    clusterer's rather than the features'.
    """

    supports_auto_k = False

    def true_k_labels(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """Spectral clustering of a Gaussian affinity (see :func:`spectral_labels`)."""
        return spectral_labels(vectors, k, self.seed)


class PcaKMeans:
    """Pixel PCA + KMeans++ (HSC paper baseline) on the project's cleaned ink.

    Without k, k is the candidate with the best silhouette.
    """

    supports_true_k = True

    def __init__(self, kind: str, embedder: str | None = None, seed: int = 0) -> None:
        """Pick the canvas for the kind of answer."""
        self.canvas = PCA_CANVAS[kind]
        self.seed = seed

    def cluster(
        self, crops: Sequence[np.ndarray], reference: np.ndarray | None, k: int | None
    ) -> Clustered:
        """Cluster one question's crops."""
        prepared = _prepare_all(crops, reference)
        written = _written(prepared)
        if len(written) < 2:
            return _with_blanks(prepared, written, [0] * len(written))
        pixels = np.stack(
            [fit_to_canvas(prepared[i].ink, *self.canvas).ravel() for i in written]
        )
        features = pca_features(pixels, self.seed)
        if k is None:
            labels = kmeans_auto_k(features, self.seed)
        else:
            labels = kmeans_labels(
                features, _k_for_written(k, prepared, written), self.seed
            )
        return _with_blanks(prepared, written, labels)


class ContourKMeans:
    """CorrectExam's "group similar": contour features of the raw crop + KMeans.

    CorrectExam removes no printed ink, so it sees the answer box too; without k it
    uses its user default of 5 groups.
    """

    supports_true_k = True

    def __init__(self, kind: str, embedder: str | None = None, seed: int = 0) -> None:
        """Remember the seed."""
        self.seed = seed

    def cluster(
        self, crops: Sequence[np.ndarray], reference: np.ndarray | None, k: int | None
    ) -> Clustered:
        """Cluster one question's crops."""
        features = np.stack([contour_features(crop) for crop in crops])
        return Clustered(
            [("group", int(x)) for x in contour_kmeans(features, k, self.seed)]
        )


class UpstreamPlom:
    """Upstream Plom's threshold sweep applied to the project's embeddings.

    Automatic k only; raises :class:`.baselines.UpstreamFailure` where upstream's job
    would end in Error.
    """

    supports_true_k = False

    def __init__(self, kind: str, embedder: str | None = None, seed: int = 0) -> None:
        """Build the embedder by name (default: :data:`DEFAULT_EMBEDDER`)."""
        self.kind = kind
        self.embedder = embedder_factory(embedder or DEFAULT_EMBEDDER[kind])(kind)

    def cluster(
        self, crops: Sequence[np.ndarray], reference: np.ndarray | None, k: int | None
    ) -> Clustered:
        """Cluster one question's crops."""
        prepared = _prepare_all(crops, reference)
        written = _written(prepared)
        vectors = _embed(self.embedder, [prepared[i] for i in written])
        labels = upstream_sweep(vectors.astype(np.float64), self.kind)
        return _with_blanks(prepared, written, labels)


class OneGroup:
    """No clustering: every answer in one group (the marker moves the minority).

    A reference row: with one dominant answer its marking cost is ``1 - dominant share``
    plus ``1/N``, a bar any clustering must beat to save work.
    """

    supports_true_k = False
    #: Doing nothing has no meaningful speed: the table shows "-" for crops/s.
    untimed = True

    def __init__(self, kind: str, embedder: str | None = None, seed: int = 0) -> None:
        """Nothing to set up."""

    def cluster(
        self, crops: Sequence[np.ndarray], reference: np.ndarray | None, k: int | None
    ) -> Clustered:
        """Put every answer in group 0."""
        return Clustered([("group", 0)] * len(crops))


#: Methods by name: ``factory(kind, embedder_name_or_None, seed) -> method``.
METHODS: dict[str, Callable[..., Method]] = {
    "pipeline": PipelineMethod,
    "pipeline-ward": PipelineWard,
    "pipeline-spectral": PipelineSpectral,
    "pca-kmeans": PcaKMeans,
    "contour-kmeans": ContourKMeans,
    "upstream-plom": UpstreamPlom,
    "one-group": OneGroup,
}
#: Methods that differ from ``pipeline`` at the true k only.
TRUE_K_VARIANTS = ("pipeline-ward", "pipeline-spectral")
#: What ``evaluate`` runs when no method is named.
DEFAULT_METHODS = tuple(name for name in METHODS if name not in TRUE_K_VARIANTS)
#: Methods whose ``@EMBEDDER`` suffix selects an embedder.
USES_EMBEDDER = ("pipeline", *TRUE_K_VARIANTS, "upstream-plom")


def build_method(spec: str, kind: str, seed: int = 0) -> Method:
    """Build a method from ``NAME`` or ``NAME@EMBEDDER`` (e.g. ``pipeline@pixels``).

    Raises:
        ValueError: unknown method or embedder name (the message lists the known ones).
    """
    name, _, embedder = spec.partition("@")
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    if embedder and name not in USES_EMBEDDER:
        raise ValueError(f"method {name!r} uses no embedder; drop '@{embedder}'")
    if embedder:
        embedder_factory(embedder)  # a clear error before any work
    return METHODS[name](kind, embedder or None, seed)
