# SPDX-License-Identifier: AGPL-3.0-or-later
"""This app's routes, namespaced ``plom_clustering``."""

from django.urls import path

from . import views

app_name = "plom_clustering"

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("jobs/", views.JobsFragmentView.as_view(), name="jobs_fragment"),
    path("new/", views.NewJobView.as_view(), name="new_job"),
    path("new/preview/", views.PreviewView.as_view(), name="preview"),
    path("job/<int:job_pk>/", views.JobView.as_view(), name="job"),
    path(
        "job/<int:job_pk>/progress/",
        views.JobProgressView.as_view(),
        name="job_progress",
    ),
    path("job/<int:job_pk>/cancel/", views.CancelJobView.as_view(), name="cancel"),
    path("job/<int:job_pk>/retry/", views.RetryJobView.as_view(), name="retry"),
    path("job/<int:job_pk>/delete/", views.DeleteJobView.as_view(), name="delete"),
    path(
        "job/<int:job_pk>/answer/<int:paper_number>.png",
        views.ThumbnailView.as_view(),
        name="thumbnail",
    ),
    path("job/<int:job_pk>/move/", views.MoveView.as_view(), name="move"),
    path("job/<int:job_pk>/merge/", views.MergeView.as_view(), name="merge"),
    path("job/<int:job_pk>/split/", views.SplitView.as_view(), name="split"),
    path("job/<int:job_pk>/rename/", views.RenameView.as_view(), name="rename"),
    path("job/<int:job_pk>/accept/", views.AcceptView.as_view(), name="accept"),
    path("job/<int:job_pk>/bin/", views.ToBinView.as_view(), name="to_bin"),
    path("job/<int:job_pk>/reset/", views.ResetView.as_view(), name="reset"),
    path("job/<int:job_pk>/publish/", views.PublishView.as_view(), name="publish"),
    path(
        "job/<int:job_pk>/unpublish/",
        views.UnpublishView.as_view(),
        name="unpublish",
    ),
]
