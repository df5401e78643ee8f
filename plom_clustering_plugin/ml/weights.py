# SPDX-License-Identifier: AGPL-3.0-or-later
"""Verified model weights: fetched on first use into a cache, or imported by hand.

A weights file is used only after its sha256 matched the manifest.  The match is
remembered in a sidecar file (``<file>.verified``: hash, size, mtime) so a job does not
rehash on every start; a file whose size or mtime changed is hashed again.  Downloads
stream into a temporary file in the cache folder while hashing, then are renamed into
place, so a reader never sees a partial file.  A per-file ``flock`` makes several worker
processes starting at once download a file once.

Nothing happens at import time: no network, no folders created, no model loaded.

Example::

    from plom_clustering_plugin.ml.weights import ensure
    path = ensure("mcq-letters")  # default version; downloads once, then verified
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from .manifest import Manifest, ModelEntry, load_manifest

try:
    import fcntl
except ImportError:  # Windows: no lock, but the atomic rename still protects readers
    fcntl = None

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]

ENV_CACHE_DIR = "PLOM_CLUSTERING_MODEL_DIR"
ENV_BASE_URL = "PLOM_CLUSTERING_WEIGHTS_URL"
ENV_DOWNLOAD = "PLOM_CLUSTERING_DOWNLOAD"
#: Name of the per-user cache folder used when nothing else is configured.
USER_CACHE_NAME = "plom_clustering"

VERIFIED = "verified"
MISSING = "missing"
CORRUPT = "corrupt"

FETCH_COMMAND = "django-admin plom_clustering_weights fetch {name}"
IMPORT_COMMAND = "django-admin plom_clustering_weights import PATH/{file}"

_CHUNK = 1 << 16
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class NetworkPolicy:
    """Timeouts and retries of a download.

    Attributes:
        connect_timeout: seconds to establish a connection.
        read_timeout: seconds the server may stay silent mid-transfer.
        attempts: tries per URL for transient failures (5xx, timeouts, cut transfers).
        backoff: seconds before the second try, doubled for each further one.
        max_backoff: upper bound of one wait.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    attempts: int = 4
    backoff: float = 1.0
    max_backoff: float = 30.0


DEFAULT_POLICY = NetworkPolicy()


class WeightsError(Exception):
    """A weights file cannot be provided; the message says what to do."""


class WeightsMissing(WeightsError):
    """The file is not in the cache and downloading is off."""


class WeightsCorrupt(WeightsError):
    """A file does not match its manifest hash (moved aside when in the cache)."""


class WeightsDownloadFailed(WeightsError):
    """Every URL failed; the message lists why for each."""


class WeightsNotInManifest(WeightsError):
    """An imported file matches no manifest entry."""


class _TransferError(Exception):
    """One URL failed in a way not worth retrying (404, wrong hash, wrong size)."""


class _TransientError(_TransferError):
    """One attempt failed in a way worth retrying (5xx, timeout, cut transfer)."""


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: the argument, else ``$PLOM_CLUSTERING_MODEL_DIR``, else per-user."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    configured = os.environ.get(ENV_CACHE_DIR)
    if configured:
        return Path(configured).expanduser()
    import platformdirs  # only needed on this fallback path

    return Path(platformdirs.user_cache_dir(USER_CACHE_NAME, appauthor=False))


def resolve_base_url(base_url: str | None = None) -> str | None:
    """The mirror: the argument, else ``$PLOM_CLUSTERING_WEIGHTS_URL``, else None.

    A plain folder path is accepted too and turned into a ``file://`` URL.
    """
    value = base_url if base_url is not None else os.environ.get(ENV_BASE_URL)
    value = (value or "").strip()
    if not value:
        return None
    if "://" not in value:
        return Path(value).expanduser().resolve().as_uri()
    return value


def resolve_download(download: bool | None = None) -> bool:
    """Whether the network may be used: the argument, else ``$PLOM_CLUSTERING_DOWNLOAD``."""
    if download is not None:
        return bool(download)
    raw = os.environ.get(ENV_DOWNLOAD, "1").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise WeightsError(f"{ENV_DOWNLOAD} must be 0 or 1, not {raw!r}")


def candidate_urls(entry: ModelEntry, base_url: str | None = None) -> list[str]:
    """Where to fetch an entry from: ``<base_url>/<file>`` alone, or the manifest URLs."""
    base_url = resolve_base_url(base_url)
    if base_url:
        return [f"{base_url.rstrip('/')}/{entry.file}"]
    return list(entry.urls)


def sha256_of_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ensure(
    name: str,
    version: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    download: bool | None = None,
    progress: ProgressCallback | None = None,
    manifest: Manifest | str | Path | None = None,
    policy: NetworkPolicy | None = None,
) -> Path:
    """Return the path of a verified weights file, downloading it if needed.

    Args:
        name: the model's manifest name.
        version: a manifest version; None means the manifest's default.
        cache_dir: the cache folder (see :func:`resolve_cache_dir`).
        base_url: a mirror (base URL or ``file://`` folder) replacing the manifest URLs.
        download: False never touches the network; None reads the environment.
        progress: called as ``progress(done_bytes, total_bytes)`` while downloading.
        manifest: a parsed manifest or its path; None is the packaged one.
        policy: timeouts and retries.

    Raises:
        WeightsMissing: offline and not cached.
        WeightsCorrupt: offline and the cached file is bad (it has been moved aside).
        WeightsDownloadFailed: no URL delivered the right file.
    """
    entry = _as_manifest(manifest).get_entry(name, version)
    return ensure_entry(
        entry,
        cache_dir=cache_dir,
        base_url=base_url,
        download=download,
        progress=progress,
        policy=policy,
    )


def ensure_entry(
    entry: ModelEntry,
    *,
    cache_dir: str | Path | None = None,
    base_url: str | None = None,
    download: bool | None = None,
    progress: ProgressCallback | None = None,
    policy: NetworkPolicy | None = None,
) -> Path:
    """:func:`ensure` for an entry already looked up."""
    folder = resolve_cache_dir(cache_dir)
    target = folder / entry.file
    if _has_valid_record(target, entry):  # the common case: no lock, no hashing
        return target
    if not resolve_download(download):
        return _use_offline(entry, target)
    # Hashing needs no lock, so a good file in a read-only folder is still usable.
    seen = _identity(target)
    if seen and _check_cached(target, entry, trust_record=False) == VERIFIED:
        return target
    _make_folder(folder)
    with _exclusive(target):
        # Another process may have fetched or replaced it while we waited for the lock;
        # the very file just found bad need not be hashed again.
        unchanged = seen is not None and _identity(target) == seen
        state = CORRUPT if unchanged else _check_cached(target, entry)
        if state == VERIFIED:
            return target
        if state == CORRUPT:
            _quarantine(target)
        _download(entry, target, candidate_urls(entry, base_url), progress, policy)
        _record_verified(target, entry)
    return target


def status(
    name: str,
    version: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    manifest: Manifest | str | Path | None = None,
    rehash: bool = False,
) -> str:
    """``"verified"``, ``"missing"`` or ``"corrupt"`` for a model in the cache.

    Never downloads or moves files (it may record a successful verification).
    ``rehash=True`` ignores the remembered verification.
    """
    entry = _as_manifest(manifest).get_entry(name, version)
    return entry_status(entry, cache_dir=cache_dir, rehash=rehash)


def entry_status(
    entry: ModelEntry, *, cache_dir: str | Path | None = None, rehash: bool = False
) -> str:
    """:func:`status` for an entry already looked up."""
    target = resolve_cache_dir(cache_dir) / entry.file
    return _check_cached(target, entry, trust_record=not rehash)


def import_file(
    path: str | Path,
    *,
    cache_dir: str | Path | None = None,
    manifest: Manifest | str | Path | None = None,
) -> tuple[ModelEntry, Path]:
    """Copy a user-supplied weights file into the cache, if it is one the manifest lists.

    The file is recognised by its hash, whatever its name.  The copy is hashed again
    while written and renamed into place, so a failed import leaves nothing behind.

    Returns:
        The matching manifest entry and the file's path in the cache.

    Raises:
        WeightsNotInManifest: the file's hash matches no entry.
        WeightsCorrupt: the file changed while it was copied.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise WeightsError(f"{source} is not a file")
    parsed = _as_manifest(manifest)
    size = source.stat().st_size
    same_size = [m for m in parsed.models if m.size == size]
    digest = sha256_of_file(source) if same_size else None
    entry = next((m for m in same_size if m.sha256 == digest), None)
    if entry is None:
        raise WeightsNotInManifest(
            _not_in_manifest_message(source, size, digest, parsed)
        )
    folder = resolve_cache_dir(cache_dir)
    target = folder / entry.file
    _make_folder(folder)
    with _exclusive(target):
        state = _check_cached(target, entry)
        if state == VERIFIED:
            return entry, target
        if state == CORRUPT:
            _quarantine(target)
        try:
            _transfer(entry, target, source.resolve().as_uri(), None, DEFAULT_POLICY)
        except _TransferError as err:
            raise WeightsCorrupt(f"could not import {source}: {err}") from None
        _record_verified(target, entry)
    return entry, target


def _as_manifest(manifest: Manifest | str | Path | None) -> Manifest:
    return manifest if isinstance(manifest, Manifest) else load_manifest(manifest)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WeightsError(
            f"cannot create the weights folder {folder}: {err}"
        ) from None


def _use_offline(entry: ModelEntry, target: Path) -> Path:
    """Offline: verify what is there without writing anything but the sidecar."""
    state = _check_cached(target, entry)
    if state == VERIFIED:
        return target
    if state == MISSING:
        raise WeightsMissing(_missing_message(entry, target))
    aside = _quarantine(target)
    raise WeightsCorrupt(
        f"{target} does not match the manifest's sha256 {entry.sha256}"
        f"{f'; it was moved aside to {aside.name}' if aside else ''}.\n"
        + _remedy(entry, target)
    )


# --- The cache: verification records, quarantine, locking ---------------------------


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _has_valid_record(target: Path, entry: ModelEntry) -> bool:
    """True if the sidecar says this very file (same size and mtime) was hashed OK."""
    try:
        stat = target.stat()
        record = json.loads(_sidecar(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record == {
        "sha256": entry.sha256,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }


def _record_verified(target: Path, entry: ModelEntry) -> None:
    stat = target.stat()
    record = {
        "sha256": entry.sha256,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    sidecar = _sidecar(target)
    temp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temp, sidecar)
    except OSError as err:  # a read-only cache still works, it is just hashed each time
        log.debug("cannot record verification of %s: %s", target, err)
        temp.unlink(missing_ok=True)


def _identity(target: Path) -> tuple[int, int, int] | None:
    """What tells one version of a file from another without reading it."""
    try:
        stat = target.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _check_cached(target: Path, entry: ModelEntry, *, trust_record: bool = True) -> str:
    """Classify the cached file, hashing it unless a valid record vouches for it."""
    try:
        size = target.stat().st_size
    except FileNotFoundError:
        return MISSING
    if trust_record and _has_valid_record(target, entry):
        return VERIFIED
    if size != entry.size or sha256_of_file(target) != entry.sha256:
        return CORRUPT
    _record_verified(target, entry)
    return VERIFIED


def _quarantine(target: Path) -> Path | None:
    """Move a bad file aside as ``<file>.corrupt-<UTC time>`` (kept for inspection)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = target.with_name(f"{target.name}.corrupt-{stamp}")
    counter = 1
    while aside.exists():
        aside = target.with_name(f"{target.name}.corrupt-{stamp}-{counter}")
        counter += 1
    try:
        os.replace(target, aside)
    except FileNotFoundError:  # another process moved it first
        return None
    except OSError as err:
        log.warning("cannot move the corrupt %s aside: %s", target, err)
        return None
    _sidecar(target).unlink(missing_ok=True)
    log.warning("%s failed verification; moved aside to %s", target, aside.name)
    return aside


@contextlib.contextmanager
def _exclusive(target: Path) -> Iterator[None]:
    """Hold a cross-process lock for one cache file (``<file>.lock``)."""
    lock_path = target.with_name(target.name + ".lock")
    try:
        handle = open(lock_path, "a+b")  # closed by the with below
    except OSError as err:
        raise WeightsError(f"cannot write to the weights folder: {err}") from None
    with handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- Downloading ------------------------------------------------------------------


def _download(
    entry: ModelEntry,
    target: Path,
    urls: list[str],
    progress: ProgressCallback | None,
    policy: NetworkPolicy | None,
) -> None:
    """Try each URL in turn (each with retries); raise with every URL's reason."""
    policy = policy or DEFAULT_POLICY
    failures = []
    for url in urls:
        log.info("downloading %s from %s", entry.file, url)
        try:
            _with_retries(entry, target, url, progress, policy)
            return
        except _TransferError as err:
            log.warning("download of %s from %s failed: %s", entry.file, url, err)
            failures.append(f"  - {url}: {err}")
    raise WeightsDownloadFailed(
        f"could not download {entry.label} ({entry.file}):\n"
        + "\n".join(failures)
        + "\n"
        + _remedy(entry, target, mirror=True)
    )


def _with_retries(
    entry: ModelEntry,
    target: Path,
    url: str,
    progress: ProgressCallback | None,
    policy: NetworkPolicy,
) -> None:
    attempts = max(1, policy.attempts)
    for attempt in range(1, attempts + 1):
        try:
            _transfer(entry, target, url, progress, policy)
            return
        except _TransientError as err:
            if attempt == attempts:
                tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
                raise _TransferError(f"{err} (gave up after {tries})") from None
            delay = min(policy.backoff * 2 ** (attempt - 1), policy.max_backoff)
            log.info(
                "attempt %d of %s failed (%s); retry in %.1fs", attempt, url, err, delay
            )
            time.sleep(delay)


def _transfer(
    entry: ModelEntry,
    target: Path,
    url: str,
    progress: ProgressCallback | None,
    policy: NetworkPolicy,
) -> None:
    """Stream one URL into a temp file beside ``target``, check it, rename it into place."""
    handle = tempfile.NamedTemporaryFile(  # renamed or removed below
        dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
    )
    temp = Path(handle.name)
    try:
        with handle, contextlib.closing(_chunks(url, entry.size, policy)) as chunks:
            digest = hashlib.sha256()
            done = 0
            for chunk in chunks:
                done += len(chunk)
                if done > entry.size:
                    raise _TransferError(
                        f"sent more than the expected {entry.size} bytes"
                    )
                digest.update(chunk)
                handle.write(chunk)
                if progress is not None:
                    progress(done, entry.size)
            if done < entry.size:
                raise _TransientError(
                    f"truncated: received {done} of {entry.size} bytes"
                )
            received = digest.hexdigest()
            if received != entry.sha256:
                raise _TransferError(
                    f"sha256 mismatch: expected {entry.sha256}, received {received}"
                )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _chunks(url: str, expected_size: int, policy: NetworkPolicy) -> Iterator[bytes]:
    scheme = urlparse(url).scheme
    if scheme == "file":
        yield from _file_chunks(url)
    elif scheme in ("http", "https"):
        yield from _http_chunks(url, expected_size, policy)
    else:
        raise _TransferError(f"unsupported URL scheme {scheme!r}")


def _file_chunks(url: str) -> Iterator[bytes]:
    path = Path(url2pathname(urlparse(url).path))
    try:
        handle = open(path, "rb")  # closed by the with below
    except FileNotFoundError:
        raise _TransferError(f"no such file {path}") from None
    except OSError as err:
        raise _TransferError(f"cannot read {path}: {err}") from None
    with handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _http_chunks(
    url: str, expected_size: int, policy: NetworkPolicy
) -> Iterator[bytes]:
    import requests  # imported here so that importing this module stays cheap

    from .. import __version__

    headers = {
        # The hash is of the file's bytes: refuse transparent compression.
        "Accept-Encoding": "identity",
        "User-Agent": f"plom-clustering-plugin/{__version__}",
    }
    timeout = (policy.connect_timeout, policy.read_timeout)
    try:
        response = requests.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.RequestException as err:
        raise _TransientError(_describe(err)) from None
    with response:
        code = response.status_code
        if code >= 500 or code in (408, 429):
            raise _TransientError(f"HTTP {code} {response.reason}")
        if code >= 400:
            raise _TransferError(f"HTTP {code} {response.reason}")
        announced = response.headers.get("Content-Length")
        if announced and announced.isdigit() and int(announced) != expected_size:
            raise _TransferError(
                f"the server announces {announced} bytes, the manifest says {expected_size}"
            )
        try:
            yield from response.iter_content(_CHUNK)
        except requests.RequestException as err:
            raise _TransientError(_describe(err)) from None


def _describe(err: Exception) -> str:
    """A one-line reason for a requests exception (they nest urllib3's long reprs)."""
    import requests

    text = str(err)
    if isinstance(err, requests.Timeout) or "timed out" in text.lower():
        return f"timed out ({type(err).__name__})"
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "the connection closed before the whole file arrived"
    if isinstance(err, requests.ConnectionError):
        # The useful part is the innermost reason (DNS, refused, TLS), minus object reprs.
        reason = getattr(err.args[0], "reason", None) if err.args else None
        text = re.sub(r"<[^>]*>: ", "", str(reason or text))
        return f"cannot connect: {text[:200]}"
    return f"{type(err).__name__}: {text[:200]}"


# --- Messages ----------------------------------------------------------------------


def _remedy(entry: ModelEntry, target: Path, *, mirror: bool = False) -> str:
    fetch = FETCH_COMMAND.format(name=entry.name)
    imp = IMPORT_COMMAND.format(file=entry.file)
    where = (
        f"The file {entry.file} ({entry.size} bytes, sha256 {entry.sha256}) must be in"
        f" {target.parent}."
    )
    if mirror:
        how = (
            f"Retry with `{fetch}`, point {ENV_BASE_URL} at a mirror (a base URL or"
            f" file:// folder), or download the file elsewhere and run `{imp}`."
        )
    else:
        how = f"Fetch it with `{fetch}`, or copy it from a machine that has it and run `{imp}`."
    return f"{where}\n{how}"


def _missing_message(entry: ModelEntry, target: Path) -> str:
    return (
        f"the weights of {entry.label} are not in the cache and downloading is off"
        f" ({ENV_DOWNLOAD}=0).\n"
        + _remedy(entry, target)
        + f"\nIt is published at {entry.urls[0]}"
    )


def _not_in_manifest_message(
    source: Path, size: int, digest: str | None, manifest: Manifest
) -> str:
    where = manifest.path.name if manifest.path else "the weights manifest"
    known = "\n".join(
        f"  - {m.label}: {m.file}, {m.size} bytes, sha256 {m.sha256}"
        for m in manifest.models
    )
    return (
        f"{source} ({size} bytes, sha256 {digest or sha256_of_file(source)}) matches no"
        f" model in {where}; expected one of:\n{known or '  (the manifest lists no models)'}"
    )
