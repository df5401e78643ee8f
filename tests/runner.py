# SPDX-License-Identifier: AGPL-3.0-or-later
"""Django's test runner, plus a closing 'N passed, N failed' line that CI can read."""

from django.test.runner import DiscoverRunner


class CountingRunner(DiscoverRunner):
    """Print a one-line summary after Django's own report."""

    def suite_result(self, suite, result, **kwargs):
        """Count the outcomes, print them, and return Django's usual failure count."""
        failed = (
            len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
        )
        skipped = len(result.skipped)
        passed = result.testsRun - failed - skipped
        print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
        return super().suite_result(suite, result, **kwargs)
