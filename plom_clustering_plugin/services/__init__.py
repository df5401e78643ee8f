# SPDX-License-Identifier: AGPL-3.0-or-later
"""Services: where the logic of jobs, crops, publishing and review lives (views stay thin)."""
