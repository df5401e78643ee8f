# SPDX-License-Identifier: AGPL-3.0-or-later
"""The Django-free core: preprocess -> embed -> cluster, plus verified weights.

Nothing in this package imports Django or Plom, so the evaluation harness, the benchmark,
the training code and the Huey job all call the very same functions.
"""
