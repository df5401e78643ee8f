# SPDX-License-Identifier: AGPL-3.0-or-later
"""``django-admin plom_clustering_weights list|fetch|verify|import``: manage model weights.

Examples::

    django-admin plom_clustering_weights list
    django-admin plom_clustering_weights fetch                 # default of every model
    django-admin plom_clustering_weights fetch mcq-letters@1
    django-admin plom_clustering_weights verify                # rehash every cached file
    django-admin plom_clustering_weights import /media/usb/mcq-letters-v1.onnx
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ...ml import weights
from ...ml.manifest import (
    Manifest,
    ManifestError,
    ModelEntry,
    load_manifest,
    version_key,
)
from ...weights_django import weights_options

_BAR_WIDTH = 30


class Command(BaseCommand):
    """List, fetch, verify and import the trained models' weights files."""

    help = (
        "List, fetch, verify or import the clustering models' weights. The cache folder"
        " is PLOM_CLUSTERING_MODEL_DIR (default <PLOM_MODEL_CACHE>/plom_clustering)."
    )

    def add_arguments(self, parser):
        """Define the four sub-commands."""
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser(
            "list", help="each model: verified, missing or corrupt"
        )
        fetch = actions.add_parser(
            "fetch",
            help="download and verify models (even when PLOM_CLUSTERING_DOWNLOAD=0,"
            " which only stops jobs from downloading)",
        )
        fetch.add_argument(
            "models",
            nargs="*",
            metavar="NAME[@VERSION]",
            help="models to fetch; default: the default version of every model",
        )
        fetch.add_argument(
            "--url",
            default=None,
            help="a mirror (base URL or file:// folder) instead of the manifest's URLs",
        )
        verify = actions.add_parser("verify", help="rehash every cached weights file")
        importing = actions.add_parser(
            "import", help="copy weights files (or a folder of them) into the cache"
        )
        importing.add_argument("paths", nargs="+", metavar="PATH")
        for sub in (listing, fetch, verify, importing):
            sub.add_argument(
                "--manifest",
                default=None,
                help="a weights manifest other than the packaged one",
            )

    def handle(self, *args, **options):
        """Run the chosen sub-command, turning weights errors into readable failures."""
        try:
            manifest = load_manifest(options["manifest"])
            getattr(self, f"_{options['action']}")(manifest, options)
        except (weights.WeightsError, ManifestError) as err:
            raise CommandError(str(err)) from err

    def _list(self, manifest: Manifest, options: dict) -> None:
        cache_dir = weights.resolve_cache_dir(weights_options()["cache_dir"])
        self.stdout.write(f"Cache folder: {cache_dir}")
        self._table(manifest, cache_dir, rehash=False)

    def _verify(self, manifest: Manifest, options: dict) -> None:
        cache_dir = weights.resolve_cache_dir(weights_options()["cache_dir"])
        self.stdout.write(f"Rehashing the weights in {cache_dir}")
        corrupt = self._table(manifest, cache_dir, rehash=True)
        if corrupt:
            names = " ".join(entry.label for entry in corrupt)
            raise CommandError(
                f"{len(corrupt)} corrupt file(s); replace them with"
                f" `django-admin plom_clustering_weights fetch {names}`"
            )

    def _fetch(self, manifest: Manifest, options: dict) -> None:
        entries = [_lookup(manifest, spec) for spec in options["models"]]
        if not options["models"]:
            entries = manifest.default_entries()
        if not entries:
            self.stdout.write("The manifest lists no models: nothing to fetch.")
            return
        settings = weights_options()
        for entry in entries:
            bar = _ProgressBar(self.stderr, entry.file)
            try:
                path = weights.ensure_entry(
                    entry,
                    cache_dir=settings["cache_dir"],
                    base_url=options["url"] or settings["base_url"],
                    download=True,
                    progress=bar,
                )
            finally:
                bar.finish()
            self.stdout.write(f"{entry.label}: verified {path}")

    def _import(self, manifest: Manifest, options: dict) -> None:
        cache_dir = weights_options()["cache_dir"]
        for raw in options["paths"]:
            source = Path(raw).expanduser()
            if not source.is_dir():
                entry, path = weights.import_file(
                    source, cache_dir=cache_dir, manifest=manifest
                )
                self.stdout.write(f"{entry.label}: imported {source} -> {path}")
                continue
            imported = 0
            for candidate in sorted(p for p in source.iterdir() if p.is_file()):
                try:
                    entry, path = weights.import_file(
                        candidate, cache_dir=cache_dir, manifest=manifest
                    )
                except weights.WeightsNotInManifest:
                    self.stdout.write(f"skipped {candidate.name}: not in the manifest")
                    continue
                imported += 1
                self.stdout.write(f"{entry.label}: imported {candidate} -> {path}")
            if not imported:
                raise CommandError(
                    f"no file in {source} matches a model in the manifest"
                )

    def _table(
        self, manifest: Manifest, cache_dir: Path, *, rehash: bool
    ) -> list[ModelEntry]:
        """Print one line per manifest entry; return the corrupt ones."""
        if not manifest.models:
            self.stdout.write("The manifest lists no models.")
            return []
        rows = [("MODEL", "VERSION", "DEFAULT", "STATUS", "SIZE", "PATH")]
        corrupt = []
        defaults = {entry.label for entry in manifest.default_entries()}
        for entry in sorted(
            manifest.models, key=lambda m: (m.name, version_key(m.version))
        ):
            state = weights.entry_status(entry, cache_dir=cache_dir, rehash=rehash)
            if state == weights.CORRUPT:
                corrupt.append(entry)
            rows.append(
                (
                    entry.name,
                    entry.version,
                    "yes" if entry.label in defaults else "",
                    state,
                    _human_size(entry.size),
                    str(cache_dir / entry.file),
                )
            )
        # Every column but the last (the path) is padded to its widest cell.
        widths = [max(map(len, column)) for column in zip(*rows, strict=True)][:-1]
        for *padded, last in rows:
            cells = [
                cell.ljust(width) for cell, width in zip(padded, widths, strict=True)
            ]
            self.stdout.write("  ".join([*cells, last]))
        return corrupt


def _lookup(manifest: Manifest, spec: str) -> ModelEntry:
    """``name`` or ``name@version`` to a manifest entry."""
    name, _, version = spec.partition("@")
    return manifest.get_entry(name, version or None)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


class _ProgressBar:
    """A one-line text bar on stderr, redrawn when the percentage changes."""

    def __init__(self, stream, label: str) -> None:
        self.stream = stream
        self.label = label
        self.last_percent = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        if percent == self.last_percent:
            return
        self.last_percent = percent
        filled = _BAR_WIDTH * percent // 100
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {percent:3d}%"
            f" {_human_size(done)} / {_human_size(total)}",
            ending="",
        )
        self.stream.flush()

    def finish(self) -> None:
        if self.last_percent >= 0:
            self.stream.write("")
