# SPDX-License-Identifier: AGPL-3.0-or-later
"""The wheel carries everything the app needs at run time."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from django.test import SimpleTestCase, TestCase

ROOT = Path(__file__).resolve().parent.parent


class WheelContentsTest(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"]
            + ["--no-build-isolation", "-w", cls.tmp.name, str(ROOT)],
            check=True,
            capture_output=True,
        )
        (wheel,) = Path(cls.tmp.name).glob("plom_clustering_plugin-*.whl")
        with zipfile.ZipFile(wheel) as zf:
            cls.names = set(zf.namelist())
            cls.manifest = zf.read("plom_clustering_plugin/weights_manifest.json")
            cls.metadata = next(
                zf.read(n).decode() for n in cls.names if n.endswith("/METADATA")
            )

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_templates_migrations_and_demo_files_are_inside(self):
        for name in (
            "plom_clustering_plugin/templates/plom_clustering_plugin/jobs.html",
            "plom_clustering_plugin/migrations/0001_initial.py",
            "plom_clustering_plugin/demo/spec.toml",
            "plom_clustering_plugin/management/commands/plom_cluster.py",
            "plom_clustering_plugin/templates_override/Progress/tools_landing.html",
            "plom_clustering_plugin/static/plom_clustering_plugin/review.js",
        ):
            self.assertIn(name, self.names)
        self.assertFalse([n for n in self.names if n.startswith("tests/")])

    def test_the_manifest_is_the_real_file_not_a_link(self):
        shipped = json.loads(self.manifest)
        on_disk = json.loads((ROOT / "weights_manifest.json").read_text())
        self.assertEqual(shipped, on_disk)

    def test_metadata_pins_plom_and_keeps_torch_optional(self):
        self.assertIn("Requires-Dist: plom<0.23,>=0.22.4", self.metadata)
        self.assertIn('Requires-Dist: torch>=2.4; extra == "train"', self.metadata)
        requires = [
            line
            for line in self.metadata.splitlines()
            if line.startswith("Requires-Dist")
        ]
        self.assertFalse([r for r in requires if "torch" in r and "extra" not in r])

    def assertImportLeavesOut(self, modules: str, forbidden: tuple[str, ...]):
        code = (
            f"import sys, {modules}; bad = [m for m in {forbidden!r}"
            " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_nothing_heavy_runs_at_import(self):
        self.assertImportLeavesOut(
            "plom_clustering_plugin, plom_clustering_plugin.ml.pipeline,"
            " plom_clustering_plugin.ml.embedders, plom_clustering_plugin.conf",
            ("onnxruntime", "torch", "django", "requests"),
        )

    def test_reading_the_manifest_imports_no_numerics(self):
        # Django's system checks read the manifest at every start of every command.
        self.assertImportLeavesOut(
            "plom_clustering_plugin.ml.manifest", ("scipy", "sklearn", "onnxruntime")
        )


class MigrationsTest(TestCase):
    def test_migrations_match_the_models(self):
        from io import StringIO

        from django.core.management import call_command

        out = StringIO()
        try:
            call_command(
                "makemigrations",
                "plom_clustering",
                check=True,
                dry_run=True,
                stdout=out,
            )
        except SystemExit:
            self.fail("models changed without a migration:\n" + out.getvalue())
