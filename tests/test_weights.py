# SPDX-License-Identifier: AGPL-3.0-or-later
import io
import logging
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from unittest import mock

from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import SimpleTestCase, override_settings

from plom_clustering_plugin.ml import weights
from plom_clustering_plugin.ml.manifest import load_manifest
from plom_clustering_plugin.ml.weights import (
    NetworkPolicy,
    WeightsCorrupt,
    WeightsDownloadFailed,
    WeightsMissing,
    WeightsNotInManifest,
    ensure,
    import_file,
    status,
)
from plom_clustering_plugin.weights_django import ensure_weights

from .weights_helpers import (
    FAST_POLICY_KWARGS,
    WeightsServer,
    model_entry,
    sha256_hex,
    write_manifest,
)

REPO = Path(__file__).resolve().parent.parent
NAME = "toy"
FILE = "toy-v1.onnx"
#: Big enough for several chunks, so progress and truncation are meaningful.
CONTENT = bytes(range(256)) * 1200
ENV_NAMES = (weights.ENV_CACHE_DIR, weights.ENV_BASE_URL, weights.ENV_DOWNLOAD)


@override_settings(PLOM_CLUSTERING_WEIGHTS_URL=None, PLOM_CLUSTERING_MODEL_DIR=None)
class WeightsTestCase(SimpleTestCase):
    """A temp cache, a manifest with one model, and a local server that serves it."""

    def setUp(self):
        self.tmp = Path(self.enterContext(tempfile.TemporaryDirectory()))
        self.cache = self.tmp / "cache"
        self.enterContext(mock.patch.dict(os.environ))
        for name in ENV_NAMES:
            os.environ.pop(name, None)
        self.server = self.enterContext(WeightsServer({FILE: CONTENT}))
        self.manifest_path = write_manifest(
            self.tmp,
            [
                model_entry(
                    NAME, "1", CONTENT, urls=[self.server.base("good") + "/" + FILE]
                )
            ],
        )
        self.manifest = load_manifest(self.manifest_path)
        self.policy = NetworkPolicy(**FAST_POLICY_KWARGS)
        self.quiet_logger()

    def quiet_logger(self):
        """Keep expected download warnings out of the test output (assertLogs still works)."""
        logger = logging.getLogger(weights.__name__)
        self.enterContext(mock.patch.object(logger, "propagate", False))
        null = logging.NullHandler()
        logger.addHandler(null)
        self.addCleanup(logger.removeHandler, null)

    def ensure(self, mode="good", **kwargs):
        options = {
            "cache_dir": self.cache,
            "base_url": self.server.base(mode),
            "manifest": self.manifest,
            "policy": self.policy,
            **kwargs,
        }
        return ensure(NAME, **options)

    def cache_listing(self):
        if not self.cache.exists():
            return []
        return sorted(p.name for p in self.cache.iterdir())


class DownloadTest(WeightsTestCase):
    def test_good_download_is_verified_and_reports_progress(self):
        calls = []
        path = self.ensure(progress=lambda done, total: calls.append((done, total)))
        self.assertEqual(path, self.cache / FILE)
        self.assertEqual(path.read_bytes(), CONTENT)
        self.assertEqual(
            self.cache_listing(), [FILE, f"{FILE}.lock", f"{FILE}.verified"]
        )
        self.assertGreater(len(calls), 2)
        self.assertEqual(calls[-1], (len(CONTENT), len(CONTENT)))
        self.assertEqual([d for d, _ in calls], sorted(d for d, _ in calls))
        self.assertEqual(
            status(NAME, cache_dir=self.cache, manifest=self.manifest), "verified"
        )

    def test_manifest_urls_are_tried_in_order(self):
        entry = model_entry(
            NAME,
            "1",
            CONTENT,
            urls=[
                f"{self.server.base('missing')}/{FILE}",
                f"{self.server.base('good')}/{FILE}",
            ],
        )
        manifest = write_manifest(self.tmp, [entry])
        path = ensure(NAME, cache_dir=self.cache, manifest=manifest, policy=self.policy)
        self.assertEqual(path.read_bytes(), CONTENT)
        self.assertEqual(self.server.hits_for("missing", FILE), 1)
        self.assertEqual(self.server.hits_for("good", FILE), 1)

    def test_404_fails_at_once_with_instructions(self):
        with self.assertRaises(WeightsDownloadFailed) as caught:
            self.ensure("missing")
        message = str(caught.exception)
        self.assertIn("HTTP 404", message)
        self.assertIn(str(self.cache), message)
        self.assertIn(f"django-admin plom_clustering_weights fetch {NAME}", message)
        self.assertIn("django-admin plom_clustering_weights import", message)
        self.assertEqual(self.server.hits_for("missing", FILE), 1)  # no retry on 404
        self.assertEqual(self.cache_listing(), [f"{FILE}.lock"])

    def test_server_error_is_retried_until_success(self):
        path = self.ensure("flaky")
        self.assertEqual(path.read_bytes(), CONTENT)
        self.assertEqual(self.server.hits_for("flaky", FILE), 3)

    def test_server_error_gives_up_after_the_attempts(self):
        self.server.flaky_failures = 100
        with self.assertRaisesMessage(
            WeightsDownloadFailed, "gave up after 3 attempts"
        ):
            self.ensure("flaky")
        self.assertEqual(self.server.hits_for("flaky", FILE), 3)

    def test_refused_connection_is_retried_with_backoff(self):
        with socket.socket() as probe:  # a port that was free a moment ago
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with (
            mock.patch.object(weights.time, "sleep") as sleep,
            self.assertRaisesMessage(WeightsDownloadFailed, "cannot connect"),
        ):
            self.ensure(base_url=f"http://127.0.0.1:{port}/weights")
        self.assertEqual([c.args[0] for c in sleep.call_args_list], [0.01, 0.02])
        self.assertEqual(self.cache_listing(), [f"{FILE}.lock"])

    def test_silent_server_times_out(self):
        started = time.monotonic()
        with self.assertRaisesMessage(WeightsDownloadFailed, "timed out"):
            self.ensure(
                "slow", policy=NetworkPolicy(**{**FAST_POLICY_KWARGS, "attempts": 2})
            )
        self.assertLess(time.monotonic() - started, self.server.slow_seconds)
        self.assertEqual(self.server.hits_for("slow", FILE), 2)
        self.assertEqual(self.cache_listing(), [f"{FILE}.lock"])

    def test_truncated_body_is_retried_and_leaves_nothing(self):
        with self.assertRaisesMessage(
            WeightsDownloadFailed, "before the whole file arrived"
        ):
            self.ensure("truncated")
        self.assertEqual(self.server.hits_for("truncated", FILE), 3)
        self.assertEqual(self.cache_listing(), [f"{FILE}.lock"])

    def test_wrong_hash_names_both_hashes_and_leaves_nothing(self):
        wrong = bytes(b ^ 0xFF for b in CONTENT)
        with self.assertRaises(WeightsDownloadFailed) as caught:
            self.ensure("wrong")
        message = str(caught.exception)
        self.assertIn(f"expected {sha256_hex(CONTENT)}", message)
        self.assertIn(f"received {sha256_hex(wrong)}", message)
        self.assertEqual(
            self.server.hits_for("wrong", FILE), 1
        )  # a wrong file stays wrong
        self.assertEqual(self.cache_listing(), [f"{FILE}.lock"])

    def test_redirect_is_followed(self):
        path = self.ensure("redirect")
        self.assertEqual(path.read_bytes(), CONTENT)
        self.assertEqual(self.server.hits_for("redirect", FILE), 1)
        self.assertEqual(self.server.hits_for("good", FILE), 1)

    def test_file_mirror_and_plain_folder(self):
        mirror = self.tmp / "mirror"
        mirror.mkdir()
        (mirror / FILE).write_bytes(CONTENT)
        path = ensure(
            NAME, cache_dir=self.cache, base_url=mirror.as_uri(), manifest=self.manifest
        )
        self.assertEqual(path.read_bytes(), CONTENT)
        other_cache = self.tmp / "other"
        path = ensure(
            NAME, cache_dir=other_cache, base_url=str(mirror), manifest=self.manifest
        )
        self.assertEqual(path.read_bytes(), CONTENT)
        self.assertEqual(sum(self.server.hits.values()), 0)

    def test_environment_sets_folder_mirror_and_switch(self):
        os.environ[weights.ENV_CACHE_DIR] = str(self.cache)
        os.environ[weights.ENV_BASE_URL] = self.server.base("good")
        path = ensure(NAME, manifest=self.manifest, policy=self.policy)
        self.assertEqual(path, self.cache / FILE)
        os.environ[weights.ENV_CACHE_DIR] = str(self.tmp / "empty")
        os.environ[weights.ENV_DOWNLOAD] = "0"
        with self.assertRaises(WeightsMissing):
            ensure(NAME, manifest=self.manifest)
        self.assertEqual(self.server.hits_for("good", FILE), 1)


class OfflineTest(WeightsTestCase):
    def test_missing_file_offline_says_where_and_how(self):
        with self.assertRaises(WeightsMissing) as caught:
            self.ensure(download=False)
        message = str(caught.exception)
        self.assertIn(FILE, message)
        self.assertIn(str(self.cache), message)
        self.assertIn(f"django-admin plom_clustering_weights fetch {NAME}", message)
        self.assertIn(
            f"django-admin plom_clustering_weights import PATH/{FILE}", message
        )
        self.assertFalse(self.cache.exists())  # offline creates nothing
        self.assertEqual(sum(self.server.hits.values()), 0)

    def test_cached_file_is_used_offline(self):
        self.ensure()
        (self.cache / f"{FILE}.verified").unlink()  # forces a real hash offline
        path = self.ensure(download=False)
        self.assertEqual(path.read_bytes(), CONTENT)
        self.assertEqual(self.server.hits_for("good", FILE), 1)

    def test_corrupt_file_offline_is_moved_aside_and_reported(self):
        self.cache.mkdir()
        (self.cache / FILE).write_bytes(b"x" * len(CONTENT))
        with self.assertRaisesMessage(WeightsCorrupt, "moved aside"):
            self.ensure(download=False)
        self.assertFalse((self.cache / FILE).exists())
        self.assertEqual(len(list(self.cache.glob(f"{FILE}.corrupt-*"))), 1)


class CacheTest(WeightsTestCase):
    def test_corrupt_cached_file_is_quarantined_and_replaced(self):
        self.cache.mkdir()
        real_hash = weights.sha256_of_file
        # Wrong bytes are hashed once (not again under the lock); a wrong size never.
        for bad, hashes in ((b"x" * len(CONTENT), 1), (CONTENT[:1000], 0)):
            with self.subTest(size=len(bad)):
                (self.cache / FILE).write_bytes(bad)
                with (
                    mock.patch.object(
                        weights, "sha256_of_file", side_effect=real_hash
                    ) as hashing,
                    self.assertLogs(weights.__name__, "WARNING") as logs,
                ):
                    path = self.ensure()
                self.assertEqual(hashing.call_count, hashes)
                self.assertEqual(path.read_bytes(), CONTENT)
                self.assertIn("moved aside", "\n".join(logs.output))
        aside = sorted(self.cache.glob(f"{FILE}.corrupt-*"))
        self.assertEqual(len(aside), 2)
        self.assertEqual(
            sorted(p.read_bytes() for p in aside),
            sorted([b"x" * len(CONTENT), CONTENT[:1000]]),
        )
        self.assertEqual(self.server.hits_for("good", FILE), 2)

    def test_verification_is_remembered_until_the_file_changes(self):
        path = self.ensure()
        real_hash = weights.sha256_of_file
        calls = []

        def counting_hash(p):
            calls.append(p)
            return real_hash(p)

        with mock.patch.object(weights, "sha256_of_file", counting_hash):
            for _ in range(3):
                self.assertEqual(self.ensure(download=False), path)
            self.assertEqual(
                status(NAME, cache_dir=self.cache, manifest=self.manifest), "verified"
            )
            self.assertEqual(calls, [])
            # Same size, other bytes, newer mtime: the record no longer vouches for it.
            before = path.stat()
            path.write_bytes(b"y" * len(CONTENT))
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 2_000_000_000))
            self.assertEqual(
                status(NAME, cache_dir=self.cache, manifest=self.manifest), "corrupt"
            )
            self.assertEqual(len(calls), 1)
        self.assertEqual(self.ensure().read_bytes(), CONTENT)
        self.assertEqual(self.server.hits_for("good", FILE), 2)

    def test_status_and_rehash(self):
        self.assertEqual(
            status(NAME, cache_dir=self.cache, manifest=self.manifest), "missing"
        )
        self.ensure()
        self.assertEqual(
            status(NAME, cache_dir=self.cache, manifest=self.manifest, rehash=True),
            "verified",
        )

    def test_concurrent_processes_download_once(self):
        self.server.good_delay = 0.3  # keeps the first download going while others wait
        go = self.tmp / "go"
        script = textwrap.dedent(f"""
            import pathlib, sys, time
            from plom_clustering_plugin.ml.weights import ensure, NetworkPolicy
            pathlib.Path(sys.argv[1]).touch()
            while not pathlib.Path({str(go)!r}).exists():
                time.sleep(0.005)
            print(ensure({NAME!r}, cache_dir={str(self.cache)!r},
                         base_url={self.server.base("good")!r},
                         manifest={str(self.manifest_path)!r},
                         policy=NetworkPolicy(read_timeout=5, attempts=1)))
            """)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        ready = [self.tmp / f"ready-{i}" for i in range(4)]
        children = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(flag)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for flag in ready
        ]
        try:
            deadline = time.monotonic() + 20
            while (
                not all(flag.exists() for flag in ready) and time.monotonic() < deadline
            ):
                time.sleep(0.01)
            go.touch()
            results = [child.communicate(timeout=20) for child in children]
        finally:
            for child in children:
                child.kill() if child.poll() is None else None
        for child, (out, err) in zip(children, results, strict=True):
            self.assertEqual(child.returncode, 0, err)
            self.assertEqual(out.strip(), str(self.cache / FILE))
        self.assertEqual(self.server.hits_for("good", FILE), 1)
        self.assertEqual((self.cache / FILE).read_bytes(), CONTENT)


class ImportTest(WeightsTestCase):
    def test_import_recognises_the_file_by_hash(self):
        source = self.tmp / "downloaded-by-hand.bin"
        source.write_bytes(CONTENT)
        entry, path = import_file(source, cache_dir=self.cache, manifest=self.manifest)
        self.assertEqual((entry.name, path), (NAME, self.cache / FILE))
        self.assertEqual(path.read_bytes(), CONTENT)
        self.assertEqual(
            status(NAME, cache_dir=self.cache, manifest=self.manifest), "verified"
        )
        self.assertEqual(sum(self.server.hits.values()), 0)

    def test_import_of_an_unknown_file_copies_nothing(self):
        source = self.tmp / FILE
        source.write_bytes(CONTENT[:-1] + b"!")
        with self.assertRaises(WeightsNotInManifest) as caught:
            import_file(source, cache_dir=self.cache, manifest=self.manifest)
        self.assertIn(sha256_hex(source.read_bytes()), str(caught.exception))
        self.assertIn(f"{NAME}@1", str(caught.exception))
        self.assertFalse(self.cache.exists())


class DjangoSettingsTest(WeightsTestCase):
    def test_cache_defaults_to_plom_model_cache(self):
        with override_settings(
            PLOM_MODEL_CACHE=str(self.tmp / "plom"),
            PLOM_CLUSTERING_WEIGHTS_URL=self.server.base("good"),
        ):
            path = ensure_weights(NAME, manifest=self.manifest)
        self.assertEqual(path, self.tmp / "plom" / "plom_clustering" / FILE)

    def test_download_setting_is_passed_on(self):
        with (
            override_settings(
                PLOM_CLUSTERING_MODEL_DIR=str(self.cache),
                PLOM_CLUSTERING_DOWNLOAD=False,
            ),
            self.assertRaisesMessage(WeightsMissing, str(self.cache)),
        ):
            ensure_weights(NAME, manifest=self.manifest)
        self.assertEqual(sum(self.server.hits.values()), 0)


class ImportTimeTest(SimpleTestCase):
    def test_importing_the_modules_does_nothing(self):
        code = (
            "import sys\n"
            "import plom_clustering_plugin.ml.weights, plom_clustering_plugin.ml.onnx_runtime\n"
            "print(sorted(m for m in ('requests', 'onnxruntime', 'django', 'platformdirs')"
            " if m in sys.modules))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        self.assertEqual(result.stdout.strip(), "[]")


class CommandTest(WeightsTestCase):
    def setUp(self):
        super().setUp()
        self.enterContext(override_settings(PLOM_CLUSTERING_MODEL_DIR=str(self.cache)))

    def command(self, *args):
        out, err = io.StringIO(), io.StringIO()
        call_command(
            "plom_clustering_weights",
            *args,
            "--manifest",
            str(self.manifest_path),
            stdout=out,
            stderr=err,
        )
        return out.getvalue(), err.getvalue()

    def test_list_fetch_verify(self):
        out, _ = self.command("list")
        self.assertRegex(
            out, rf"{NAME}\s+1\s+yes\s+missing\s+307\.2 kB\s+{self.cache / FILE}"
        )
        out, err = self.command(
            "fetch", f"{NAME}@1", "--url", self.server.base("redirect")
        )
        self.assertIn(f"{NAME}@1: verified {self.cache / FILE}", out)
        self.assertIn("100%", err)
        self.assertIn("[" + "#" * 30 + "]", err)
        out, _ = self.command("list")
        self.assertRegex(out, rf"{NAME}\s+1\s+yes\s+verified")
        out, _ = self.command("verify")
        self.assertRegex(out, rf"{NAME}\s+1\s+yes\s+verified")

    def test_list_marks_the_default_and_orders_versions_as_numbers(self):
        entries = [model_entry(NAME, v, CONTENT) for v in ("10", "2", "9")]
        (self.tmp / "named").mkdir()
        self.manifest_path = write_manifest(
            self.tmp / "named", entries, defaults={NAME: "9"}
        )
        out, _ = self.command("list")
        rows = [line.split()[:3] for line in out.splitlines() if line.startswith(NAME)]
        self.assertEqual(
            rows, [[NAME, "2", "missing"], [NAME, "9", "yes"], [NAME, "10", "missing"]]
        )

    def test_fetch_without_names_uses_the_manifest_urls(self):
        out, _ = self.command("fetch")
        self.assertIn(f"{NAME}@1: verified", out)
        self.assertEqual(self.server.hits_for("good", FILE), 1)

    def test_verify_reports_corrupt_files(self):
        self.cache.mkdir()
        (self.cache / FILE).write_bytes(b"z" * len(CONTENT))
        with self.assertRaisesMessage(CommandError, f"fetch {NAME}@1"):
            self.command("verify")

    def test_errors_are_readable(self):
        with self.assertRaisesMessage(CommandError, "no model named 'nope'"):
            self.command("fetch", "nope")
        with self.assertRaisesMessage(CommandError, "HTTP 404"):
            self.command("fetch", NAME, "--url", self.server.base("missing"))

    def test_import_file_and_folder(self):
        folder = self.tmp / "usb"
        folder.mkdir()
        (folder / "renamed.onnx").write_bytes(CONTENT)
        (folder / "notes.txt").write_text("not a model")
        out, _ = self.command("import", str(folder))
        self.assertIn(f"{NAME}@1: imported", out)
        self.assertIn("skipped notes.txt", out)
        self.assertEqual((self.cache / FILE).read_bytes(), CONTENT)
        with self.assertRaisesMessage(CommandError, "matches no model"):
            self.command("import", str(folder / "notes.txt"))
