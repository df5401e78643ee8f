# SPDX-License-Identifier: AGPL-3.0-or-later
"""The settings object, its system checks, and the README's settings table."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

from django.core.checks import run_checks
from django.test import SimpleTestCase, override_settings

from plom_clustering_plugin.conf import DEFAULTS, clustering_settings

README = Path(__file__).resolve().parent.parent / "README.md"


def check_ids():
    return {m.id for m in run_checks() if m.id and m.id.startswith("plom_clustering")}


class SettingsTest(SimpleTestCase):
    @override_settings(PLOM_CLUSTERING_WEIGHTS_URL=None, PLOM_CLUSTERING_MODEL_DIR=None)
    def test_defaults(self):
        for name, (default, _) in DEFAULTS.items():
            with self.subTest(name=name):
                self.assertEqual(getattr(clustering_settings, name), default)

    def test_django_setting_then_environment_win(self):
        with override_settings(PLOM_CLUSTERING_BATCH_SIZE=16):
            self.assertEqual(clustering_settings.BATCH_SIZE, 16)
            with mock.patch.dict(os.environ, {"PLOM_CLUSTERING_BATCH_SIZE": "8"}):
                self.assertEqual(clustering_settings.BATCH_SIZE, 8)

    def test_environment_strings_are_parsed(self):
        env = {
            "PLOM_CLUSTERING_DOWNLOAD": "0",
            "PLOM_CLUSTERING_REVIEW_CONFIDENCE": "0.3",
        }
        with mock.patch.dict(os.environ, env):
            self.assertIs(clustering_settings.DOWNLOAD, False)
            self.assertEqual(clustering_settings.REVIEW_CONFIDENCE, 0.3)

    def test_bad_values_name_the_setting(self):
        with mock.patch.dict(os.environ, {"PLOM_CLUSTERING_DOWNLOAD": "maybe"}):
            with self.assertRaisesMessage(
                ValueError, "PLOM_CLUSTERING_DOWNLOAD must be 0 or 1"
            ):
                _ = clustering_settings.DOWNLOAD
        with self.assertRaises(AttributeError):
            _ = clustering_settings.NO_SUCH_THING

    def test_model_dir_defaults_inside_plom_model_cache(self):
        with override_settings(
            PLOM_MODEL_CACHE="/srv/plom/model_cache", PLOM_CLUSTERING_MODEL_DIR=None
        ):
            self.assertEqual(
                clustering_settings.model_dir(),
                Path("/srv/plom/model_cache/plom_clustering"),
            )
        with mock.patch.dict(os.environ, {"PLOM_CLUSTERING_MODEL_DIR": "/weights"}):
            self.assertEqual(clustering_settings.model_dir(), Path("/weights"))

    def test_readme_documents_every_setting(self):
        text = README.read_text()
        for name in DEFAULTS:
            self.assertIn(f"`PLOM_CLUSTERING_{name}`", text)


class SystemChecksTest(SimpleTestCase):
    def test_a_good_configuration_passes(self):
        self.assertEqual(check_ids(), set())

    def test_bad_configurations_are_reported(self):
        cases = {
            "PLOM_CLUSTERING_TAG_PREFIX": ("cluster_x", "plom_clustering.E002"),
            "PLOM_CLUSTERING_QUEUE": ("nowhere", "plom_clustering.E003"),
            "PLOM_CLUSTERING_ONNX_THREADS": (0, "plom_clustering.E004"),
            "PLOM_CLUSTERING_REVIEW_CONFIDENCE": (1.5, "plom_clustering.E005"),
            "PLOM_CLUSTERING_BATCH_SIZE": ("lots", "plom_clustering.E001"),
            "PLOM_CLUSTERING_HME_VERSION": ("99", "plom_clustering.E007"),
        }
        for name, (value, check_id) in cases.items():
            with self.subTest(name=name), override_settings(**{name: value}):
                self.assertEqual(check_ids(), {check_id})

    def test_missing_urls_are_reported(self):
        with override_settings(ROOT_URLCONF="plom_server.urls"):
            self.assertIn("plom_clustering.W001", check_ids())
