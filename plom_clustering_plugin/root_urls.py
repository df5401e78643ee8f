# SPDX-License-Identifier: AGPL-3.0-or-later
"""Root URLconf: all of Plom's routes plus this app's under ``clustering/``."""

from django.urls import include, path
from plom_server.urls import urlpatterns as plom_urlpatterns

urlpatterns = [
    *plom_urlpatterns,
    path("clustering/", include("plom_clustering_plugin.urls")),
]
