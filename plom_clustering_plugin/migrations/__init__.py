# SPDX-License-Identifier: AGPL-3.0-or-later
"""Migrations of the plugin (one per release, as Plom does)."""
