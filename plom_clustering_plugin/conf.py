# SPDX-License-Identifier: AGPL-3.0-or-later
"""The plugin's settings: one object, ``PLOM_CLUSTERING_*`` names, environment overrides.

Each setting is read, in order of precedence, from the environment variable
``PLOM_CLUSTERING_<NAME>``, then from the Django setting of the same name, then from
:data:`DEFAULTS`.  Values are read on every access, so ``override_settings`` and
environment changes in tests take effect at once.

Example::

    from plom_clustering_plugin.conf import clustering_settings
    clustering_settings.QUEUE  # "chores" unless configured
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PREFIX = "PLOM_CLUSTERING_"

#: Every setting, its default and what it means (also rendered as the README's table).
DEFAULTS: dict[str, tuple[Any, str]] = {
    "QUEUE": (
        "chores",
        "Huey queue the clustering jobs run on (Plom's `chores` by default).",
    ),
    "MODEL_DIR": (
        None,
        "Folder of the verified weights cache. Default: `<PLOM_MODEL_CACHE>/plom_clustering`"
        " inside Plom, else a per-user cache folder.",
    ),
    "WEIGHTS_URL": (
        None,
        "Base URL (or `file://` folder) of a weights mirror; overrides the manifest's URLs.",
    ),
    "MANIFEST": (
        None,
        "Path of a weights manifest to use instead of the packaged one (to try models).",
    ),
    "DOWNLOAD": (
        True,
        "`0` never touches the network: weights must already be in MODEL_DIR.",
    ),
    "ONNX_THREADS": (
        1,
        "onnxruntime intra-op threads per worker process (Huey runs several processes).",
    ),
    "BATCH_SIZE": (64, "Crops per ONNX run."),
    "HME_VERSION": (
        None,
        "Version of `hme-symbols` the math jobs use (e.g. `7`); unset: the manifest's"
        " default. See docs/models-hme.md for what each version costs and scores.",
    ),
    "MCQ_VERSION": (
        None,
        "Version of `mcq-letters` the letter jobs use; unset: the manifest's default.",
    ),
    "TAG_PREFIX": (
        "cl",
        "Start of every tag the plugin writes, e.g. `cl_q3_B`. Must not start with"
        " `cluster_` or `@`.",
    ),
    "REVIEW_CONFIDENCE": (
        0.5,
        "For models without a calibrated threshold: answers less confident than this"
        " go to the review bin with a suggestion.",
    ),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(name: str, raw: Any, default: Any) -> Any:
    """Convert a raw value (often an environment string) to the type of its default."""
    if raw is None:
        return None
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{PREFIX}{name} must be 0 or 1, not {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ValueError(
                f"{PREFIX}{name} must be a whole number, not {raw!r}"
            ) from None
    if isinstance(default, float):
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{PREFIX}{name} must be a number, not {raw!r}") from None
    return raw


class ClusteringSettings:
    """Lazy accessor for the ``PLOM_CLUSTERING_*`` settings."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"No setting {PREFIX}{name}")
        default = DEFAULTS[name][0]
        raw = os.environ.get(PREFIX + name)
        if raw is None:
            raw = _django_setting(PREFIX + name, default)
        return _coerce(name, raw, default)

    def model_dir(self) -> Path | None:
        """The weights cache folder, resolved against Plom's ``PLOM_MODEL_CACHE``.

        Returns None when neither the setting nor Plom's cache is configured, in which
        case the weights module falls back to a per-user cache folder.
        """
        configured = self.MODEL_DIR
        if configured:
            return Path(configured)
        plom_cache = _django_setting("PLOM_MODEL_CACHE", None)
        if plom_cache:
            return Path(plom_cache) / "plom_clustering"
        return None


def _django_setting(name: str, default: Any) -> Any:
    """Read a Django setting if Django is configured, else return the default."""
    try:
        from django.conf import settings

        if not settings.configured:
            return default
        return getattr(settings, name, default)
    except ImportError:
        return default


clustering_settings = ClusteringSettings()
