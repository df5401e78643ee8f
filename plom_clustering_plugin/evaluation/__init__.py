# SPDX-License-Identifier: AGPL-3.0-or-later
"""Measure clustering on real handwriting, side by side with baselines.

``metrics`` scores one clustering, ``datasets`` reads a ``labels.csv`` folder,
``protocols`` turns it into questions, ``scanify`` makes clean crops look scanned,
``baselines`` and ``methods`` produce clusterings, ``runner`` ties them together and
``report`` prints the table.  Nothing here imports Django: the command-line entry
points are :mod:`plom_clustering_plugin.evaluate` and
:mod:`plom_clustering_plugin.benchmark`.
"""
