# SPDX-License-Identifier: AGPL-3.0-or-later
"""The on-disk cache of rendered training arrays."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from django.test import SimpleTestCase

from plom_clustering_plugin.training.npz_cache import cached_arrays


class _WhilePickled:
    """An array element that runs ``action`` while np.savez is writing it."""

    def __init__(self, action):
        self.action = action

    def __reduce__(self):
        self.action()
        return (int, (0,))


class CachedArraysTests(SimpleTestCase):
    def setUp(self):
        self.folder = Path(tempfile.mkdtemp())
        self.path = self.folder / "canvases-x.npz"

    def test_a_second_run_making_the_same_cache_mid_write_spoils_neither(self):
        # Two runs started together (a harness and a training run, say) used to
        # share one temporary name: the later rename found the file gone.
        second = {"canvases": np.arange(12, dtype=np.uint8).reshape(3, 4)}
        got = []

        def second_run():
            got.append(cached_arrays(self.path, lambda: second))

        first = {"rows": np.array([_WhilePickled(second_run)], dtype=object)}
        cached_arrays(self.path, lambda: first)
        np.testing.assert_array_equal(got[0]["canvases"], second["canvases"])
        self.assertEqual([p.name for p in self.folder.iterdir()], [self.path.name])

    def test_a_failed_write_leaves_neither_cache_nor_temporary_file(self):
        def fail():
            raise OSError("disk full")

        with self.assertRaisesRegex(OSError, "disk full"):
            cached_arrays(
                self.path,
                lambda: {"rows": np.array([_WhilePickled(fail)], dtype=object)},
            )
        self.assertEqual(list(self.folder.iterdir()), [])
