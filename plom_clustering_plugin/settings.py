# SPDX-License-Identifier: AGPL-3.0-or-later
"""Plom's settings plus this app: point ``DJANGO_SETTINGS_MODULE`` here to enable it.

Plom has no plugin hook, so a deployment that wants clustering runs Django with
``DJANGO_SETTINGS_MODULE=plom_clustering_plugin.settings`` (the
``plom-clustering-server`` launcher does this for you).  Everything else is Plom's.
"""

import copy
import os
from pathlib import Path

from plom_server.settings import *  # noqa: F401,F403
from plom_server.settings import DJANGO_HUEY, INSTALLED_APPS, PLOM_BASE_DIR, TEMPLATES

INSTALLED_APPS = [*INSTALLED_APPS, "plom_clustering_plugin"]
ROOT_URLCONF = "plom_clustering_plugin.root_urls"

# Plom's template folder is searched before app folders: ours goes first so that
# templates_override/Progress/tools_landing.html (which extends Plom's) adds our card.
TEMPLATES = copy.deepcopy(TEMPLATES)
TEMPLATES[0]["DIRS"] = [
    Path(__file__).resolve().parent / "templates_override",
    *TEMPLATES[0]["DIRS"],
]

# A dedicated queue (PLOM_CLUSTERING_QUEUE=clustering) keeps clustering off the workers
# that scanning needs; it gets one worker and its own Huey database.
_queue = os.environ.get("PLOM_CLUSTERING_QUEUE", "").strip()
if _queue and _queue not in DJANGO_HUEY["queues"]:
    DJANGO_HUEY["queues"][_queue] = copy.deepcopy(DJANGO_HUEY["queues"]["chores"])
    DJANGO_HUEY["queues"][_queue]["filename"] = (
        PLOM_BASE_DIR / f"hueydb-{_queue}.sqlite3"
    )
    DJANGO_HUEY["queues"][_queue]["consumer"]["workers"] = int(
        os.environ.get("PLOM_CLUSTERING_WORKERS", "1")
    )
