# SPDX-License-Identifier: AGPL-3.0-or-later
"""Every model in Django's admin, as Plom's CI requires of its own apps."""

from django.contrib import admin

from .models import AnswerCluster, AnswerMembership, ClusteringJob, PublishedTagLink


@admin.register(ClusteringJob)
class ClusteringJobAdmin(admin.ModelAdmin):
    """Jobs with their provenance and progress."""

    list_display = (
        "pk",
        "question_index",
        "version",
        "kind",
        "status",
        "model_name",
        "model_version",
        "done",
        "total",
        "published_at",
    )
    list_filter = ("kind", "status")


@admin.register(AnswerCluster)
class AnswerClusterAdmin(admin.ModelAdmin):
    """Clusters of a job."""

    list_display = ("pk", "job", "number", "name", "machine_name", "kind")


@admin.register(AnswerMembership)
class AnswerMembershipAdmin(admin.ModelAdmin):
    """Each paper's place in a job."""

    list_display = ("pk", "job", "paper", "cluster", "state", "confidence")
    list_filter = ("state",)


@admin.register(PublishedTagLink)
class PublishedTagLinkAdmin(admin.ModelAdmin):
    """What publishing wrote."""

    list_display = ("pk", "job", "task", "tag", "link_added", "tag_created")
