# SPDX-License-Identifier: AGPL-3.0-or-later
"""Django system checks: fail fast on a misconfigured plugin (``django-admin check``)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.urls import NoReverseMatch, reverse
from plom.tagging import is_valid_tag_text

from .conf import DEFAULTS, PREFIX, clustering_settings


@register()
def check_settings(app_configs=None, **kwargs) -> list:
    """Every ``PLOM_CLUSTERING_*`` value parses and makes sense."""
    errors = []
    values = {}
    for name in DEFAULTS:
        try:
            values[name] = getattr(clustering_settings, name)
        except ValueError as err:
            errors.append(Error(str(err), id="plom_clustering.E001"))
    prefix = values.get("TAG_PREFIX")
    if prefix is not None and (
        not is_valid_tag_text(str(prefix)) or str(prefix).startswith(("@", "cluster_"))
    ):
        errors.append(
            Error(
                f"{PREFIX}TAG_PREFIX {prefix!r} is not usable: tags may hold letters,"
                " digits and _ - + : ; . only, and must not start with '@' (tags for"
                " one user) or 'cluster_' (upstream Plom's clustering deletes those).",
                id="plom_clustering.E002",
            )
        )
    queue = values.get("QUEUE")
    if queue is not None and queue not in settings.DJANGO_HUEY.get("queues", {}):
        errors.append(
            Error(
                f"{PREFIX}QUEUE {queue!r} is not a Huey queue in DJANGO_HUEY.",
                hint="Set it before Django starts so plom_clustering_plugin.settings"
                " can create the queue, or use 'chores'.",
                id="plom_clustering.E003",
            )
        )
    for name in ("ONNX_THREADS", "BATCH_SIZE"):
        if values.get(name) is not None and values[name] < 1:
            errors.append(
                Error(f"{PREFIX}{name} must be at least 1.", id="plom_clustering.E004")
            )
    confidence = values.get("REVIEW_CONFIDENCE")
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        errors.append(
            Error(
                f"{PREFIX}REVIEW_CONFIDENCE must be between 0 and 1.",
                id="plom_clustering.E005",
            )
        )
    return errors


@register()
def check_urls(app_configs=None, **kwargs) -> list:
    """The plugin's pages are reachable (ROOT_URLCONF includes them)."""
    try:
        reverse("plom_clustering:home")
    except NoReverseMatch:
        return [
            Warning(
                "The clustering pages are not in the URLconf.",
                hint="Set ROOT_URLCONF = 'plom_clustering_plugin.root_urls' or include"
                " 'plom_clustering_plugin.urls' in yours.",
                id="plom_clustering.W001",
            )
        ]
    return []


@register()
def check_weights(app_configs=None, **kwargs) -> list:
    """With downloads off, every model the manifest lists must already be verified."""
    from .ml import weights
    from .ml.manifest import ManifestError, UnknownModelError, load_manifest

    try:
        manifest = load_manifest(clustering_settings.MANIFEST)
    except (ManifestError, OSError) as err:
        return [
            Error(f"The weights manifest is unusable: {err}", id="plom_clustering.E006")
        ]
    from .services.embedding import MODEL_FOR_KIND, pinned_version

    problems = []
    for kind, name in MODEL_FOR_KIND.items():
        version = pinned_version(kind)
        if version is None:
            continue
        try:  # the lookup a job does, so the check and the job agree
            manifest.get_entry(name, version)
        except UnknownModelError as err:
            problems.append(
                Error(
                    f"{PREFIX}{kind.upper()}_VERSION pins {name} version {version!r}:"
                    f" {err}",
                    id="plom_clustering.E007",
                )
            )
    if clustering_settings.DOWNLOAD:
        return problems
    cache = clustering_settings.model_dir()
    for entry in manifest.models:
        state = weights.entry_status(entry, cache_dir=cache)
        if state != weights.VERIFIED:
            problems.append(
                Warning(
                    f"Model {entry.name} v{entry.version} is {state} in"
                    f" {weights.resolve_cache_dir(cache)} and downloads are off"
                    f" ({PREFIX}DOWNLOAD=0): its jobs will be refused.",
                    hint="Run 'django-admin plom_clustering_weights import PATH' with"
                    f" the file {entry.file}, or allow downloads.",
                    id="plom_clustering.W002",
                )
            )
    return problems
