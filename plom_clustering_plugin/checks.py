# SPDX-License-Identifier: AGPL-3.0-or-later
"""Django system checks: fail fast on a misconfigured plugin."""
