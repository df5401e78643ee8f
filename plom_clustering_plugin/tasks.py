# SPDX-License-Identifier: AGPL-3.0-or-later
"""Huey tasks (thin: the work lives in services)."""
