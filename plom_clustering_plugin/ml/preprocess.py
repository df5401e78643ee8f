# SPDX-License-Identifier: AGPL-3.0-or-later
"""Turn a scanned answer crop into clean ink: template ink out, specks out, blank test.

A crop that comes out blank, or keeps only a small part of its ink, is read a second
time at a lower ink floor, so that faint writing (light pencil, thin strokes shrunk
into the box) is neither taken for an empty box nor cut into a few dark fragments.

Images are numpy arrays.  Ink maps are float32 in ``[0, 1]`` with 1 = full ink and 0 =
paper, so that they can be summed, resized and fed to a network without re-inverting.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

#: An ink level below this is paper (scanner noise, faint show-through).
INK_FLOOR = 0.25
#: Percentile of a crop's grey taken as its paper colour.
PAPER_PERCENTILE = 90
#: Connected ink specks smaller than this many pixels (at 200 dpi) are scan dust.
MIN_SPECK_PIXELS = 12
#: Template ink is removed within this many pixels of printed strokes (scan misalignment).
TEMPLATE_DILATION = 3
#: A crop with less ink than this many full-ink pixels is blank.  Blank boxes keep no
#: ink at all after template and speck removal (0.0 on every one of 1,000 scanify boxes
#: and 14 really scanned Plom pages), while 0.9 % of faint or thin-pen scanned letters
#: hold 5-38: 15 keeps most of those and still leaves room for a smudge.
BLANK_MIN_INK = 15.0
#: A crop that is blank at :data:`INK_FLOOR` is read again at this floor.  Short answers
#: written large in thin pen read 0.11-0.14 ink once scanned: 13 of 938 scan-simulated
#: expressions and 8 of 2,961 letters came out blank at 0.25 and none at 0.12.
FAINT_INK_FLOOR = 0.12
#: A crop is also read at that floor when it keeps less than this share of the ink it
#: keeps there: a thin light stroke loses most of its length at :data:`INK_FLOOR` and
#: only its darkest spots stay.  Of 938 clean expressions none keeps under 0.7 (1st
#: percentile 0.91), while 61 of 938 scan-simulated ones did (down to 0.05), and their
#: embeddings fell to a cosine of 0-0.5 from the clean reading's.
FAINT_SHARE = 0.7
#: In that second reading printed ink is removed this far from its strokes: at 0.12 the
#: blurred halo of a misaligned box line reaches past 3 pixels (13 % of scan-simulated
#: empty expression boxes kept a line fragment of up to 158 pixels), not past 5.
FAINT_TEMPLATE_DILATION = 5
#: ...and specks are this large: a blurred dust speck spans up to 20 pixels at 0.12.
FAINT_MIN_SPECK_PIXELS = 24
#: Margin kept around the ink's bounding box, in pixels.
BBOX_MARGIN = 2


@dataclass(frozen=True)
class PreparedCrop:
    """One answer after preprocessing.

    Attributes:
        ink: float32 ink map cut to the written marks' bounding box (plus a small margin);
            shape ``(1, 1)`` of zeros when blank.
        is_blank: True when nothing but paper, specks or printed template remains.
        ink_amount: total ink (sum of the ink map), in full-ink pixels.
        bbox: ``(top, left, bottom, right)`` of the ink in the original crop, or None.
    """

    ink: np.ndarray
    is_blank: bool
    ink_amount: float
    bbox: tuple[int, int, int, int] | None


def to_gray(image: np.ndarray) -> np.ndarray:
    """Return a float32 grey image in ``[0, 1]`` (1 = white) from grey, RGB or RGBA uint8."""
    array = np.asarray(image)
    if array.ndim == 3:
        if array.shape[2] == 4:
            alpha = array[..., 3:4].astype(np.float32) / 255.0
            rgb = array[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        else:
            rgb = array[..., :3].astype(np.float32)
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    elif array.ndim == 2:
        gray = array.astype(np.float32)
    else:
        raise ValueError(f"expected a 2-D or 3-D image array, got shape {array.shape}")
    if array.dtype == np.uint8 or gray.max(initial=0.0) > 1.0:
        gray = gray / 255.0
    return np.clip(gray, 0.0, 1.0)


def paper_level(image: np.ndarray, gray: np.ndarray) -> float:
    """The :data:`PAPER_PERCENTILE` percentile of ``gray`` (``image`` made grey).

    A grey uint8 scan, the usual crop, is counted in 256 bins instead of sorted: the
    same value as ``np.percentile`` (linear interpolation), in a fifth of the time.
    """
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 2:
        return float(np.percentile(gray, PAPER_PERCENTILE))
    position = PAPER_PERCENTILE / 100 * (array.size - 1)
    below = int(position)
    ranks = [below, min(below + 1, array.size - 1)]
    cumulative = np.cumsum(np.bincount(array.ravel(), minlength=256))
    low, high = np.searchsorted(cumulative, ranks, side="right") / np.float32(255)
    return float(low + (high - low) * (position - below))


def ink_level(image: np.ndarray) -> np.ndarray:
    """Estimate ink darkness relative to the local paper colour, without a floor.

    The paper level is a high percentile of the crop, so grey scans, yellowed paper and
    JPEG haze all map to (near) zero ink.
    """
    gray = to_gray(image)
    if gray.size == 0:
        return gray
    paper = paper_level(image, gray)
    paper = max(paper, 0.35)  # a crop that is mostly ink still has paper somewhere
    return np.clip((paper - gray) / paper, 0.0, 1.0).astype(np.float32)


def above_floor(ink: np.ndarray, floor: float = INK_FLOOR) -> np.ndarray:
    """A copy of ``ink`` with levels below ``floor`` set to paper."""
    return np.where(ink < floor, np.float32(0.0), ink).astype(np.float32, copy=False)


def ink_map(image: np.ndarray) -> np.ndarray:
    """Ink darkness (see :func:`ink_level`) with levels below :data:`INK_FLOOR` zeroed."""
    return above_floor(ink_level(image))


#: Per dilation, the last reference seen, its crop shape and its mask: a question's
#: crops all share one reference, so a mask is computed once per question, not per crop.
_last_templates: dict[int, tuple[np.ndarray, tuple[int, int], np.ndarray]] = {}


def template_mask(
    reference: np.ndarray, shape: tuple[int, int], dilation: int = TEMPLATE_DILATION
) -> np.ndarray:
    """Pixels within ``dilation`` pixels of printed ink of the blank reference crop."""
    cached = _last_templates.get(dilation)
    if cached is not None and cached[0] is reference and cached[1] == shape:
        return cached[2]
    mask = _compute_template_mask(reference, shape, dilation)
    mask.flags.writeable = False  # shared between calls
    _last_templates[dilation] = (reference, shape, mask)
    return mask


def _compute_template_mask(
    reference: np.ndarray, shape: tuple[int, int], dilation: int
) -> np.ndarray:
    ref_ink = ink_map(reference)
    if ref_ink.shape != shape:
        resized = Image.fromarray((ref_ink * 255).astype(np.uint8)).resize(
            (shape[1], shape[0]), Image.BILINEAR
        )
        ref_ink = np.asarray(resized, dtype=np.float32) / 255.0
    printed = ref_ink > INK_FLOOR
    if dilation:
        printed = ndimage.binary_dilation(printed, iterations=dilation)
    return printed


def remove_specks(
    ink: np.ndarray, min_pixels: int = MIN_SPECK_PIXELS, reach: int = 0
) -> np.ndarray:
    """Zero connected ink components smaller than ``min_pixels``.

    Args:
        ink: the ink map.
        min_pixels: components this large or larger are writing.
        reach: a small component with a pixel within this many pixels (across and
            down) of writing is kept, as the dot of an ``i`` or a short ``=`` bar in
            a thin pen; 0 removes every small component.
    """
    labels, count = ndimage.label(ink > 0)
    if count == 0:
        return ink
    sizes = np.bincount(labels.ravel())
    small = sizes < min_pixels
    small[0] = False
    if reach > 0 and small.any():
        writing = (labels > 0) & ~small[labels]
        near = ndimage.maximum_filter(writing, size=2 * reach + 1)
        small[labels[near]] = False
    cleaned = ink.copy()
    cleaned[small[labels]] = 0.0
    return cleaned


def prepare(
    image: np.ndarray, reference: np.ndarray | None = None, *, dot_reach: int = 0
) -> PreparedCrop:
    """Preprocess one scanned answer crop.

    Args:
        image: the scanned crop (grey, RGB or RGBA), as cut by Plom.
        reference: the same rectangle cut from the blank reference page, whose printed
            ink (box lines, "Answer:" labels) is removed from ``image``.  None skips it.
        dot_reach: specks this close to writing are kept (:func:`remove_specks`); a
            model's input spec says what it was trained with.

    Returns:
        The cleaned ink cut to its bounding box, and whether the crop is blank.
    """
    level = ink_level(image)
    if level.size == 0:
        raise ValueError("empty crop: the answer rectangle has no pixels")
    ink = remove_specks(
        _off_template(level, reference, INK_FLOOR, TEMPLATE_DILATION),
        MIN_SPECK_PIXELS,
        dot_reach,
    )
    amount = float(ink.sum())
    # Faint writing: what survives a lower floor, a wider template margin and a larger
    # speck size is written (the crop stays blank if nothing does).  Speck removal only
    # takes ink away, so where the faint ink before it is too little to switch, it is
    # skipped.
    faint = _off_template(level, reference, FAINT_INK_FLOOR, FAINT_TEMPLATE_DILATION)
    if _reads_faint(amount, float(faint.sum())):
        faint = remove_specks(faint, FAINT_MIN_SPECK_PIXELS, dot_reach)
        if _reads_faint(amount, float(faint.sum())):
            ink = faint
            amount = float(ink.sum())
    rows = np.flatnonzero(ink.any(axis=1))
    if amount < BLANK_MIN_INK or rows.size == 0:
        return PreparedCrop(np.zeros((1, 1), np.float32), True, amount, None)
    cols = np.flatnonzero(ink.any(axis=0))
    top = max(int(rows[0]) - BBOX_MARGIN, 0)
    bottom = min(int(rows[-1]) + 1 + BBOX_MARGIN, ink.shape[0])
    left = max(int(cols[0]) - BBOX_MARGIN, 0)
    right = min(int(cols[-1]) + 1 + BBOX_MARGIN, ink.shape[1])
    return PreparedCrop(
        ink[top:bottom, left:right].copy(), False, amount, (top, left, bottom, right)
    )


def _reads_faint(amount: float, faint_amount: float) -> bool:
    """Whether a crop keeping ``amount`` ink is read at the faint floor instead."""
    return amount < BLANK_MIN_INK or amount < FAINT_SHARE * faint_amount


def _off_template(
    level: np.ndarray, reference: np.ndarray | None, floor: float, dilation: int
) -> np.ndarray:
    """Ink above ``floor`` with printed template ink removed."""
    ink = above_floor(level, floor)
    if reference is not None:
        ink[template_mask(reference, ink.shape, dilation)] = 0.0
    return ink


def fit_to_canvas(ink: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale an ink map to fit ``height x width`` keeping its aspect ratio, centred."""
    h, w = ink.shape
    scale = min(height / h, width / w)
    new_h = max(1, min(height, round(h * scale)))
    new_w = max(1, min(width, round(w * scale)))
    ink = np.asarray(ink, np.float32)
    # On one BLAS thread: a threaded product changes the last bits with the thread
    # layout, and answers that sit right at a cut height then change group.
    with _blas_controller().limit(limits=1, user_api="blas"):
        resized = resize_weights(h, new_h) @ ink @ resize_weights(w, new_w).T
    canvas = np.zeros((height, width), np.float32)
    top = (height - new_h) // 2
    left = (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


@lru_cache(maxsize=1)
def _blas_controller():
    """The loaded BLAS as threadpoolctl (a scikit-learn dependency) sees it; made once."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@lru_cache(maxsize=4096)
def resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """``(out_size, in_size)`` matrix of Pillow's antialiased bilinear resampling.

    The same triangle filter, widened by the reduction factor, and the same pixel
    windows as ``Image.resize(..., BILINEAR)`` (within 3e-7 of it), as a matrix so that
    a resize is two small matrix products: 5x faster than a round trip through Pillow,
    which was a fifth of the letter model's time per crop.  Treat it as read-only.
    """
    scale = in_size / out_size
    stretch = max(scale, 1.0)  # downscaling widens the filter: antialiasing
    centres = (np.arange(out_size) + 0.5) * scale
    first = np.maximum(np.trunc(centres - stretch + 0.5), 0)
    stop = np.minimum(np.trunc(centres + stretch + 0.5), in_size)
    x = np.arange(in_size)[None, :]
    weights = np.maximum(0.0, 1.0 - np.abs((x - centres[:, None] + 0.5) / stretch))
    weights[(x < first[:, None]) | (x >= stop[:, None])] = 0.0
    total = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    return weights.astype(np.float32)
