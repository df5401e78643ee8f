# SPDX-License-Identifier: AGPL-3.0-or-later
"""The weights manifest: which trained models exist, where to get them, how to feed them.

``weights_manifest.json`` (top level of the repository, shipped inside the package) lists
every released model version with its file's hash and size, download URLs, input and
output conventions and provenance.  It is validated as a whole on load, and a bad entry
is reported by its field, e.g. ``weights_manifest.json: models[1].sha256 must be 64 hex
characters``.

New jobs take a model's default version: the one the optional top-level ``defaults``
object names (``{"hme-symbols": "10"}``), else the newest.  So a version can ship for
those who pin it without replacing the default.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The manifest schema versions this code understands.
SUPPORTED_SCHEMA_VERSIONS = (1,)
#: Where the packaged manifest lives (a symlink to the top-level file in a checkout).
PACKAGED_MANIFEST = Path(__file__).resolve().parent.parent / "weights_manifest.json"

DTYPES = ("float32", "float16", "float64")
MEANINGS = ("probabilities", "logits", "embedding")
INK_POLARITIES = ("white-on-black", "black-on-white")
#: A larger ``input.dot_reach`` would keep scan dust a whole letter away from writing.
MAX_DOT_REACH = 100
DEFAULT_SAME_ANSWER_DISTANCE = 0.1
#: Cosine distance beyond which two answers are surely different, when an entry has none
#: (also the clusterer's default; defined here so that reading the manifest, as Django's
#: checks do at every start, does not import scipy and scikit-learn).
DEFAULT_DIFFERENT_ANSWER_DISTANCE = 0.5

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_REQUIRED = {
    "name",
    "version",
    "file",
    "sha256",
    "size",
    "urls",
    "input",
    "output",
    "licence",
    "training_data",
    "training_command",
    "seed",
    "metrics",
}
_OPTIONAL = {"same_answer_distance", "different_answer_distance", "description"}


class ManifestError(ValueError):
    """The manifest is missing, unreadable or breaks the schema."""


class UnknownModelError(ManifestError, LookupError):
    """No manifest entry has the requested name (and version)."""


@dataclass(frozen=True)
class Normalisation:
    """How an ink map (1 = ink, 0 = paper) becomes the network's input.

    Applied in this order: polarity (``black-on-white`` flips to ``1 - ink``), then
    scaling from ``[0, 1]`` to ``range``, then ``(x - mean) / std``.
    """

    ink: str = "white-on-black"
    range: tuple[float, float] = (0.0, 1.0)
    mean: float = 0.0
    std: float = 1.0


@dataclass(frozen=True)
class InputSpec:
    """The network's single image input.

    Attributes:
        name: the ONNX graph's input name.
        shape: ``(N, 1, H, W)`` or ``(N, H, W)``; None marks a dynamic dimension (the
            batch axis must be dynamic, the canvas ``H x W`` fixed).
        dtype: numpy dtype name of the input tensor.
        normalisation: how the ink map is scaled before it goes in.
        dot_reach: specks within this many pixels of writing are kept when the crop
            is cleaned (``dot_reach`` of :func:`~.preprocess.prepare`); 0, the
            default, removes every speck, as the networks up to v31 were trained.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    normalisation: Normalisation
    dot_reach: int = 0

    @property
    def canvas(self) -> tuple[int, int]:
        """The fixed ``(height, width)`` the ink is fitted onto."""
        return int(self.shape[-2]), int(self.shape[-1])


@dataclass(frozen=True)
class OutputSpec:
    """What the network's first output means.

    Attributes:
        meaning: ``probabilities``, ``logits`` or ``embedding``.
        labels: the class of each output dimension for classifiers, else None.
    """

    meaning: str
    labels: tuple[str, ...] | None


@dataclass(frozen=True)
class ModelEntry:
    """One released version of one model."""

    name: str
    version: str
    file: str
    sha256: str
    size: int
    urls: tuple[str, ...]
    input: InputSpec
    output: OutputSpec
    licence: str
    training_data: str
    training_command: str
    seed: int | None
    metrics: dict[str, Any] = field(default_factory=dict)
    same_answer_distance: float = DEFAULT_SAME_ANSWER_DISTANCE
    different_answer_distance: float = DEFAULT_DIFFERENT_ANSWER_DISTANCE
    description: str = ""

    @property
    def label(self) -> str:
        """``name@version``, as shown to users and accepted by the command."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest and where it came from."""

    schema_version: int
    models: tuple[ModelEntry, ...]
    path: Path | None = None
    #: Default version by model name, as ``defaults`` names it (unnamed: the newest).
    defaults: dict[str, str] = field(default_factory=dict)

    def get_entry(self, name: str, version: str | None = None) -> ModelEntry:
        """Return the entry for ``name`` at ``version``, or its default version if None.

        The default is the version ``defaults`` names for the model, else the newest.

        Raises:
            UnknownModelError: naming the models (or versions) that do exist.
        """
        matches = [m for m in self.models if m.name == name]
        if not matches:
            known = ", ".join(sorted({m.name for m in self.models})) or "none"
            raise UnknownModelError(
                f"{self._where()}: no model named {name!r} (known models: {known})"
            )
        if version is None:
            version = self.defaults.get(name)
        if version is None:
            return max(matches, key=lambda m: version_key(m.version))
        for entry in matches:
            if entry.version == str(version):
                return entry
        known = ", ".join(m.version for m in matches)
        raise UnknownModelError(
            f"{self._where()}: model {name!r} has no version {version!r}"
            f" (known versions: {known})"
        )

    def default_entries(self) -> list[ModelEntry]:
        """The default version of every model, by name."""
        return [self.get_entry(name) for name in sorted({m.name for m in self.models})]

    def _where(self) -> str:
        return self.path.name if self.path else "weights manifest"


def version_key(version: str) -> tuple:
    """Sort key for version strings: numeric parts compare as numbers ("10" > "9")."""
    parts = re.split(r"(\d+)", version)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p)


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read and validate a manifest file (the packaged one when ``path`` is None).

    Raises:
        ManifestError: the file is missing, not JSON, or breaks the schema; the message
            names the file and the offending field.
    """
    path = Path(path) if path is not None else PACKAGED_MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"weights manifest not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError(f"cannot read weights manifest {path}: {err}") from None
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path.name}: not valid JSON: {err}") from None
    return parse_manifest(data, source=path)


def get_entry(
    name: str, version: str | None = None, manifest: Manifest | None = None
) -> ModelEntry:
    """Look up a model in ``manifest`` (default: the packaged one); its default if no version."""
    return (manifest or load_manifest()).get_entry(name, version)


def parse_manifest(data: Any, source: Path | None = None) -> Manifest:
    """Validate already-decoded manifest JSON.

    Args:
        data: the decoded JSON document.
        source: the file it came from, used in error messages.
    """
    check = _Checker(source.name if source else "weights manifest")
    check.that(isinstance(data, dict), "", "must be a JSON object")
    schema = data.get("schema_version")
    check.that(
        isinstance(schema, int) and not isinstance(schema, bool),
        "schema_version",
        "must be a whole number",
    )
    check.that(
        schema in SUPPORTED_SCHEMA_VERSIONS,
        "schema_version",
        f"is {schema}, but this plugin only understands"
        f" {', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}: upgrade plom-clustering-plugin",
    )
    models = data.get("models")
    check.that(isinstance(models, list), "models", "must be a list")
    entries = tuple(
        _parse_entry(check, f"models[{i}]", m) for i, m in enumerate(models)
    )
    seen_labels: set[str] = set()
    seen_files: set[str] = set()
    for i, entry in enumerate(entries):
        check.that(
            entry.label not in seen_labels,
            f"models[{i}]",
            f"repeats {entry.name} version {entry.version}",
        )
        check.that(
            entry.file not in seen_files, f"models[{i}].file", f"repeats {entry.file!r}"
        )
        seen_labels.add(entry.label)
        seen_files.add(entry.file)
    return Manifest(schema, entries, source, _parse_defaults(check, data, entries))


def _parse_defaults(
    check: _Checker, data: dict, entries: tuple[ModelEntry, ...]
) -> dict[str, str]:
    """The optional ``defaults``: each a model's name and one of its versions."""
    raw = data.get("defaults", {})
    check.that(isinstance(raw, dict), "defaults", "must be an object")
    labels = {entry.label for entry in entries}
    for name, version in raw.items():
        where = f"defaults.{name}"
        check.that(isinstance(version, str), where, "must be a version string")
        check.that(
            any(entry.name == name for entry in entries), where, "names no model"
        )
        check.that(
            f"{name}@{version}" in labels, where, f"names no version {version!r}"
        )
    return dict(raw)


class _Checker:
    """Raises ManifestError messages of the form ``<file>: <field> <problem>``."""

    def __init__(self, where: str) -> None:
        self.where = where

    def that(self, condition: bool, where: str, problem: str) -> None:
        if not condition:
            subject = f"{where} " if where else ""
            raise ManifestError(f"{self.where}: {subject}{problem}")

    def text(self, obj: dict, key: str, where: str, *, empty: bool = False) -> str:
        value = obj.get(key)
        self.that(isinstance(value, str), f"{where}.{key}", "must be a string")
        self.that(empty or bool(value.strip()), f"{where}.{key}", "must not be empty")
        return value

    def number(self, value: Any, where: str) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        self.that(ok, where, "must be a number")
        return float(value)


def _parse_entry(check: _Checker, where: str, raw: Any) -> ModelEntry:
    check.that(isinstance(raw, dict), where, "must be a JSON object")
    missing = sorted(_REQUIRED - raw.keys())
    check.that(not missing, f"{where}.{missing[0] if missing else ''}", "is missing")
    unknown = sorted(raw.keys() - _REQUIRED - _OPTIONAL)
    check.that(
        not unknown,
        f"{where}.{unknown[0] if unknown else ''}",
        "is not a known field (a typo?)",
    )
    name = check.text(raw, "name", where)
    check.that(
        bool(_NAME.match(name)),
        f"{where}.name",
        "must be lower-case letters, digits, '.', '_' or '-'",
    )
    version = check.text(raw, "version", where)
    check.that(
        bool(_SAFE.match(version)),
        f"{where}.version",
        "must be letters, digits, '.', '_', '+' or '-'",
    )
    file = check.text(raw, "file", where)
    check.that(
        bool(_SAFE.match(file)),
        f"{where}.file",
        "must be a plain file name (no folders)",
    )
    check.that(
        version in file,
        f"{where}.file",
        f"must carry the version {version!r} so versions can sit side by side",
    )
    sha256 = raw["sha256"]
    check.that(
        isinstance(sha256, str) and bool(_HEX64.match(sha256)),
        f"{where}.sha256",
        "must be 64 hex characters (lower case)",
    )
    size = raw["size"]
    check.that(
        isinstance(size, int) and not isinstance(size, bool) and size > 0,
        f"{where}.size",
        "must be a positive whole number of bytes",
    )
    urls = raw["urls"]
    check.that(
        isinstance(urls, list) and len(urls) > 0,
        f"{where}.urls",
        "must be a non-empty list of URLs",
    )
    for j, url in enumerate(urls):
        check.that(
            isinstance(url, str) and url.startswith(("https://", "http://", "file://")),
            f"{where}.urls[{j}]",
            "must be an https://, http:// or file:// URL",
        )
    seed = raw["seed"]
    check.that(
        seed is None or (isinstance(seed, int) and not isinstance(seed, bool)),
        f"{where}.seed",
        "must be a whole number or null",
    )
    check.that(
        isinstance(raw["metrics"], dict), f"{where}.metrics", "must be an object"
    )
    distance = _distance(check, raw, "same_answer_distance", where)
    different = _distance(check, raw, "different_answer_distance", where)
    check.that(
        distance < different,
        f"{where}.different_answer_distance",
        "must be larger than same_answer_distance",
    )
    output = _parse_output(check, f"{where}.output", raw["output"])
    return ModelEntry(
        name=name,
        version=version,
        file=file,
        sha256=sha256,
        size=size,
        urls=tuple(urls),
        input=_parse_input(check, f"{where}.input", raw["input"]),
        output=output,
        licence=check.text(raw, "licence", where),
        training_data=check.text(raw, "training_data", where),
        training_command=check.text(raw, "training_command", where),
        seed=seed,
        metrics=dict(raw["metrics"]),
        same_answer_distance=distance,
        different_answer_distance=different,
        description=_optional_text(check, raw, "description", where),
    )


_DISTANCE_DEFAULTS = {
    "same_answer_distance": DEFAULT_SAME_ANSWER_DISTANCE,
    "different_answer_distance": DEFAULT_DIFFERENT_ANSWER_DISTANCE,
}


def _distance(check: _Checker, raw: dict, key: str, where: str) -> float:
    value = check.number(raw.get(key, _DISTANCE_DEFAULTS[key]), f"{where}.{key}")
    check.that(
        0 <= value <= 2, f"{where}.{key}", "must be in [0, 2] (a cosine distance)"
    )
    return value


def _optional_text(check: _Checker, raw: dict, key: str, where: str) -> str:
    if key not in raw:
        return ""
    return check.text(raw, key, where, empty=True)


def _parse_input(check: _Checker, where: str, raw: Any) -> InputSpec:
    check.that(isinstance(raw, dict), where, "must be a JSON object")
    name = check.text(raw, "name", where)
    shape = raw.get("shape")
    check.that(isinstance(shape, list), f"{where}.shape", "must be a list")
    dims: list[int | None] = []
    for j, dim in enumerate(shape):
        dynamic = dim is None or dim == -1
        fixed = isinstance(dim, int) and not isinstance(dim, bool) and dim > 0
        check.that(
            dynamic or fixed,
            f"{where}.shape[{j}]",
            "must be a positive size, or -1/null for a dynamic axis",
        )
        dims.append(None if dynamic else dim)
    check.that(
        len(dims) in (3, 4), f"{where}.shape", "must be [N, 1, H, W] or [N, H, W]"
    )
    check.that(dims[0] is None, f"{where}.shape[0]", "(the batch axis) must be dynamic")
    check.that(
        len(dims) == 3 or dims[1] == 1, f"{where}.shape[1]", "(channels) must be 1"
    )
    check.that(
        dims[-2] is not None and dims[-1] is not None,
        f"{where}.shape",
        "must give a fixed canvas height and width",
    )
    dtype = raw.get("dtype")
    check.that(dtype in DTYPES, f"{where}.dtype", f"must be one of {', '.join(DTYPES)}")
    dot_reach = raw.get("dot_reach", 0)
    check.that(
        isinstance(dot_reach, int)
        and not isinstance(dot_reach, bool)
        and 0 <= dot_reach <= MAX_DOT_REACH,
        f"{where}.dot_reach",
        f"must be a whole number of pixels from 0 to {MAX_DOT_REACH}",
    )
    return InputSpec(
        name,
        tuple(dims),
        dtype,
        _parse_normalisation(check, f"{where}.normalisation", raw),
        dot_reach,
    )


def _parse_normalisation(check: _Checker, where: str, parent: dict) -> Normalisation:
    raw = parent.get("normalisation")
    check.that(isinstance(raw, dict), where, "must be a JSON object")
    ink = raw.get("ink", "white-on-black")
    check.that(
        ink in INK_POLARITIES,
        f"{where}.ink",
        f"must be one of {', '.join(INK_POLARITIES)}",
    )
    value_range = raw.get("range", [0, 1])
    check.that(
        isinstance(value_range, list) and len(value_range) == 2,
        f"{where}.range",
        "must be [low, high]",
    )
    low = check.number(value_range[0], f"{where}.range[0]")
    high = check.number(value_range[1], f"{where}.range[1]")
    mean = check.number(raw.get("mean", 0.0), f"{where}.mean")
    std = check.number(raw.get("std", 1.0), f"{where}.std")
    check.that(std > 0, f"{where}.std", "must be positive")
    return Normalisation(ink, (low, high), mean, std)


def _parse_output(check: _Checker, where: str, raw: Any) -> OutputSpec:
    check.that(isinstance(raw, dict), where, "must be a JSON object")
    meaning = raw.get("meaning")
    check.that(
        meaning in MEANINGS, f"{where}.meaning", f"must be one of {', '.join(MEANINGS)}"
    )
    labels = raw.get("labels")
    check.that(
        labels is None
        or (isinstance(labels, list) and all(isinstance(x, str) for x in labels)),
        f"{where}.labels",
        "must be a list of strings or null",
    )
    check.that(
        not (meaning == "embedding" and labels),
        f"{where}.labels",
        "must be null for an embedding (its dimensions are not classes)",
    )
    return OutputSpec(meaning, tuple(labels) if labels is not None else None)
