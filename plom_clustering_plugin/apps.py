# SPDX-License-Identifier: AGPL-3.0-or-later
"""Django app configuration."""

from django.apps import AppConfig


class PlomClusteringConfig(AppConfig):
    """Register checks and Huey tasks when Django starts (nothing heavy: no models load)."""

    name = "plom_clustering_plugin"
    label = "plom_clustering"
    verbose_name = "Plom answer clustering"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Import the checks and the tasks so that Huey consumers see the tasks."""
        from . import checks, tasks  # noqa: F401
