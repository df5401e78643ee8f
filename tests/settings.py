# SPDX-License-Identifier: AGPL-3.0-or-later
"""Test settings: the plugin's settings, a throwaway PLOM_BASE_DIR, Huey immediate.

SQLite by default; ``PLOM_DATABASE_BACKEND=postgres`` (as ``.ci/run`` sets for its second
pass) runs the same suite on PostgreSQL.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("PLOM_DATABASE_BACKEND", "sqlite")
if not os.environ.get("PLOM_BASE_DIR"):
    os.environ["PLOM_BASE_DIR"] = tempfile.mkdtemp(prefix="plom-clustering-tests-")
    # Scans and media of the run live here; nothing in it outlives the run.
    atexit.register(shutil.rmtree, os.environ["PLOM_BASE_DIR"], ignore_errors=True)
for _folder in ("plom_extra_static", "staticfiles"):  # quiets whitenoise's warnings
    Path(os.environ["PLOM_BASE_DIR"], _folder).mkdir(parents=True, exist_ok=True)

from plom_clustering_plugin.settings import *  # noqa: E402,F401,F403
from plom_clustering_plugin.settings import DJANGO_HUEY  # noqa: E402

# django-huey builds its queues once at import: immediate mode must be set here.
for _queue in DJANGO_HUEY["queues"].values():
    _queue["immediate"] = True

TEST_RUNNER = "tests.runner.CountingRunner"

# The released weights come through the real download path, from the checkout's
# weights/ folder (a local mirror), into a cache of this run.
PLOM_CLUSTERING_WEIGHTS_URL = (
    Path(__file__).resolve().parent.parent / "weights"
).as_uri()
PLOM_CLUSTERING_MODEL_DIR = str(Path(os.environ["PLOM_BASE_DIR"], "model_cache"))

# Plom logs every Huey step at DEBUG: keep test output readable.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "WARNING"},
    "loggers": {"huey": {"level": "WARNING"}},
}
