# SPDX-License-Identifier: AGPL-3.0-or-later
"""A throwaway Plom exam with really scanned papers: used by the demo AND the tests."""
