# SPDX-License-Identifier: AGPL-3.0-or-later
"""Reference clusterers that the project's pipeline is measured against.

* pixel PCA + KMeans++ (the HSC paper's baseline), with k by silhouette when not given;
* contour-length features + KMeans (CorrectExam's "group similar", user default k = 5);
* upstream Plom's agglomerative threshold sweep (``plom_ml.clustering``, 0.22.4),
  including the ways it fails;
* spectral clustering at a given k, a second reading of embeddings beside KMeans.

Functions take feature arrays (or one raw crop for the contour features) and return one
integer label per row.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.decomposition import PCA
from sklearn.metrics import davies_bouldin_score, silhouette_score

#: Principal components kept by the pixel baseline.
PCA_COMPONENTS = 50
#: Candidate values of k tried by the silhouette search.
AUTO_K_CANDIDATES = 12
#: CorrectExam's default number of groups, used when k is not given.
CORRECTEXAM_DEFAULT_K = 5
#: CorrectExam ignores contours shorter than this (pixels).
CORRECTEXAM_MIN_CONTOUR = 3
#: The spectral clusterer's Gaussian width is the median distance from each row to its
#: this-many-th nearest neighbour (the 7 of Zelnik-Manor and Perona's self-tuning
#: spectral clustering, taken as one width for all rows).
SPECTRAL_NEIGHBOUR = 7
#: Upstream Plom's sweeps (``MCQClusteringStrategy`` / ``HMEClusteringStrategy``).
UPSTREAM_SWEEPS = {
    "mcq": {"thresholds": np.linspace(0.1, 0.5, 50), "metric": "cosine"},
    "hme": {"thresholds": np.linspace(4, 7, 40), "metric": "euclidean"},
}


class UpstreamFailure(RuntimeError):
    """Upstream Plom's sweep would end the job in Error on this question."""


def pca_features(pixels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Project pixel rows onto their first principal components."""
    components = min(PCA_COMPONENTS, pixels.shape[0] - 1, pixels.shape[1])
    if components < 1:
        return pixels.astype(np.float64)
    return PCA(n_components=components, random_state=seed).fit_transform(pixels)


def kmeans_labels(features: np.ndarray, k: int, seed: int = 0, attempts: int = 1):
    """KMeans with k-means++ seeding; k is clipped to the number of rows."""
    k = max(1, min(int(k), len(features)))
    if k == 1:
        return np.zeros(len(features), np.int64)
    model = KMeans(n_clusters=k, init="k-means++", n_init=attempts, random_state=seed)
    return model.fit_predict(features)


def gaussian_affinity(vectors: np.ndarray) -> np.ndarray:
    """``exp(-(d / sigma)^2)`` of the cosine distances ``d`` between L2-normalised rows.

    ``sigma`` is the median distance to the :data:`SPECTRAL_NEIGHBOUR`-th nearest
    neighbour, so the width follows how far apart a model puts writings, whatever its
    scale.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    distance = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    neighbour = min(SPECTRAL_NEIGHBOUR, len(vectors) - 1)
    sigma = np.median(np.sort(distance, axis=1)[:, neighbour])
    return np.exp(-((distance / max(float(sigma), 1e-6)) ** 2))


def spectral_labels(vectors: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Spectral clustering of L2-normalised rows into ``k`` groups.

    The rows of the graph's leading eigenvectors are assigned by a pivoted QR
    (``cluster_qr``: no random restarts, so the seed barely matters).  Unlike KMeans on
    the embeddings it follows chains of close neighbours, so an answer written in
    several layouts stays one group even when its spread exceeds the gap between two
    small answers (docs/evaluation.md, "The clusterer at the true k").
    """
    k = max(1, min(int(k), len(vectors)))
    if k == 1:
        return np.zeros(len(vectors), np.int64)
    if k == len(vectors):
        return np.arange(k)
    model = SpectralClustering(
        n_clusters=k,
        affinity="precomputed",
        assign_labels="cluster_qr",
        random_state=seed,
    )
    with warnings.catch_warnings():
        # Far answers' affinities underflow to 0; a graph in pieces is still grouped
        # (each piece spans its own eigenvectors), so sklearn's warning is noise here.
        warnings.filterwarnings("ignore", "Graph is not fully connected")
        return model.fit_predict(gaussian_affinity(vectors))


def candidate_ks(n: int) -> list[int]:
    """Values of k worth trying for ``n`` rows: 2 to n/2, spaced geometrically."""
    top = max(2, min(n - 1, n // 2))
    return sorted({int(round(k)) for k in np.geomspace(2, top, AUTO_K_CANDIDATES)})


def kmeans_auto_k(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """KMeans at the candidate k with the best silhouette (1 cluster below 4 rows)."""
    n = len(features)
    if n < 4:
        return np.zeros(n, np.int64)
    best_score, best_labels = -np.inf, np.zeros(n, np.int64)
    for k in candidate_ks(n):
        labels = kmeans_labels(features, k, seed)
        if not 2 <= len(np.unique(labels)) < n:
            continue
        score = silhouette_score(features, labels)
        if score > best_score:
            best_score, best_labels = score, labels
    return best_labels


def contour_features(image: np.ndarray) -> np.ndarray:
    """CorrectExam's per-crop features: total contour length and contour count.

    Otsu threshold (inverted), Canny edges, external contours, contours longer than
    3 px; we add the aspect ratio of the thresholded ink's bounding box.
    """
    import cv2  # Plom's dependency; imported here to keep other users light

    gray = np.asarray(image, dtype=np.uint8)
    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    edges = cv2.Canny(binary, 100, 200, apertureSize=3)
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    lengths = [cv2.arcLength(c, True) for c in contours]
    lengths = [length for length in lengths if length > CORRECTEXAM_MIN_CONTOUR]
    rows = np.flatnonzero(binary.any(axis=1))
    cols = np.flatnonzero(binary.any(axis=0))
    aspect = (cols.size / rows.size) if rows.size else 0.0
    return np.array([sum(lengths), len(lengths), aspect], dtype=np.float64)


def contour_kmeans(features: np.ndarray, k: int | None, seed: int = 0) -> np.ndarray:
    """KMeans on standardised contour features; k defaults to CorrectExam's 5.

    The features are standardised because length (hundreds of pixels) would otherwise
    drown count and aspect; CorrectExam's own 2-feature variant does not.
    """
    spread = features.std(axis=0)
    scaled = (features - features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    return kmeans_labels(scaled, k or CORRECTEXAM_DEFAULT_K, seed, attempts=5)


def upstream_sweep(vectors: np.ndarray, kind: str) -> np.ndarray:
    """Upstream Plom's ``get_best_clustering`` on the given vectors.

    MCQ: average linkage, cosine, thresholds 0.1-0.5, best silhouette.  HME: ward,
    thresholds 4-7, best (lowest) Davies-Bouldin.  Thresholds giving fewer than 2
    clusters are skipped.  One tree cut at each threshold gives the same labels as
    upstream's fresh ``AgglomerativeClustering`` per threshold.

    Raises:
        UpstreamFailure: where upstream's job fails: no threshold gives 2 clusters
            (``NoThresholdFound``), or one gives N singletons and the score raises
            ``ValueError``.
    """
    sweep = UPSTREAM_SWEEPS[kind]
    if len(vectors) < 2:
        raise UpstreamFailure("NoThresholdFound: fewer than 2 answers")
    if sweep["metric"] == "cosine":
        tree = linkage(vectors, method="average", metric="cosine")
        score, better = silhouette_score, np.greater
    else:
        tree = linkage(vectors, method="ward")
        score, better = davies_bouldin_score, np.less
    best: tuple[float, np.ndarray] | None = None
    for threshold in sweep["thresholds"]:
        labels = fcluster(tree, t=threshold, criterion="distance")
        if len(np.unique(labels)) < 2:
            continue
        try:
            value = float(score(vectors, labels))
        except ValueError as err:
            raise UpstreamFailure(f"threshold {threshold:.3f}: {err}") from err
        if best is None or better(value, best[0]):
            best = (value, labels)
    if best is None:
        raise UpstreamFailure("NoThresholdFound: every threshold gives 1 cluster")
    return best[1]
