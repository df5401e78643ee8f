# SPDX-License-Identifier: AGPL-3.0-or-later
"""``plom_cluster`` and ``plom_clustering_weights``."""
