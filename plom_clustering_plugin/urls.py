# SPDX-License-Identifier: AGPL-3.0-or-later
"""This app's routes, namespaced ``plom_clustering``."""

from django.urls import path

from . import views

app_name = "plom_clustering"

urlpatterns = [
    path("", views.JobListView.as_view(), name="home"),
]
