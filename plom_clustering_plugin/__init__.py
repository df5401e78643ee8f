# SPDX-License-Identifier: AGPL-3.0-or-later
"""Group handwritten exam answers in Plom so that markers see identical answers together.

The package has two halves that never mix:

* ``plom_clustering_plugin.ml``: the Django-free core (preprocess -> embed -> cluster,
  weights), used by the job, the evaluation harness, the benchmark and training alike.
* everything else: a Django app that adapts Plom's world (scans, reference pages, tags,
  marking priority, Huey) to that core and back.
"""

__version__ = "0.1.0.dev0"
