# SPDX-License-Identifier: AGPL-3.0-or-later
"""``django-admin plom_cluster``: start, watch, list, show, publish and unpublish jobs."""

from __future__ import annotations

import sys

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from plom_server.Base.models import HueyTaskTracker

from ...models import AnswerMembership, ClusteringJob
from ...services import jobs, publish
from ...services.progress import wait_for_job


class Command(BaseCommand):
    """Cluster the answers to a question from the command line."""

    help = "Cluster handwritten answers of a question and hand the groups to markers."

    def add_arguments(self, parser: CommandParser) -> None:
        """Sub-commands: start, list, show, publish, unpublish, cancel, delete."""
        sub = parser.add_subparsers(dest="action", required=True)
        start = sub.add_parser("start", help="Start a clustering job and wait for it.")
        start.add_argument("--question", "-q", type=int, required=True)
        start.add_argument("--version", "-v", type=int, default=1)
        start.add_argument(
            "--page", type=int, help="Default: the question's first page."
        )
        start.add_argument(
            "--rect",
            required=True,
            help="left,top,right,bottom as Plom's fractions of the QR-code box.",
        )
        start.add_argument("--kind", choices=["mcq", "hme"], required=True)
        start.add_argument("--username", help="Who starts it (recorded on the job).")
        start.add_argument("--no-wait", action="store_true", help="Return at once.")
        sub.add_parser("list", help="List clustering jobs.")
        show = sub.add_parser("show", help="Show a job's clusters and bins.")
        show.add_argument("job", type=int)
        pub = sub.add_parser("publish", help="Tag each cluster's marking tasks.")
        pub.add_argument("job", type=int)
        pub.add_argument(
            "--priority", action="store_true", help="Also order marking by cluster."
        )
        pub.add_argument("--username")
        unpub = sub.add_parser("unpublish", help="Remove exactly the tags we added.")
        unpub.add_argument("job", type=int)
        cancel = sub.add_parser("cancel", help="Cancel a queued or running job.")
        cancel.add_argument("job", type=int)
        delete = sub.add_parser("delete", help="Delete a job's groups (never scans).")
        delete.add_argument("job", type=int)

    def handle(self, *args, **opts) -> None:
        """Dispatch to the sub-command; service errors become CommandError."""
        try:
            getattr(self, f"do_{opts['action']}")(opts)
        except jobs.JobError as err:
            raise CommandError(str(err)) from err

    def _job(self, pk: int) -> ClusteringJob:
        job = ClusteringJob.objects.filter(pk=pk).first()
        if job is None:
            raise CommandError(f"There is no clustering job {pk}.")
        return job

    def _user(self, username: str | None) -> User | None:
        if not username:
            return None
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no user {username!r}.")
        return user

    def do_start(self, opts) -> None:
        """Start a job and, unless --no-wait, wait for it and show its groups."""
        try:
            left, top, right, bottom = (float(x) for x in opts["rect"].split(","))
        except ValueError as err:
            raise CommandError(
                "--rect takes four numbers: left,top,right,bottom"
            ) from err
        job = jobs.start_job(
            question_index=opts["question"],
            version=opts["version"],
            page_number=opts["page"],
            rect={"left": left, "top": top, "right": right, "bottom": bottom},
            kind=opts["kind"],
            user=self._user(opts["username"]),
        )
        self.stdout.write(f"Started clustering job {job.pk}.")
        if opts["no_wait"]:
            return
        job = wait_for_job(job, sys.stderr)
        if job.status == HueyTaskTracker.ERROR:
            raise CommandError(f"Job {job.pk} failed: {job.message}")
        self.stdout.write(f"Job {job.pk} complete: {job.message}")
        self._show(job)

    def do_list(self, opts) -> None:
        """One line per job."""
        rows = ClusteringJob.objects.filter(obsolete=False).order_by("pk")
        if not rows:
            self.stdout.write("No clustering jobs.")
        for job in rows:
            published = " published" if job.is_published else ""
            self.stdout.write(
                f"{job.pk:>4}  q{job.question_index} v{job.version} p{job.page_number}"
                f"  {job.kind}  {job.get_status_display():<8}{published}  {job.message}"
            )

    def do_show(self, opts) -> None:
        """A job's clusters and bins."""
        self._show(self._job(opts["job"]))

    def _show(self, job: ClusteringJob) -> None:
        members = AnswerMembership.objects.filter(job=job).select_related("paper")
        for cluster in job.clusters.order_by("number"):
            papers = [
                m.paper.paper_number for m in members if m.cluster_id == cluster.pk
            ]
            if papers:
                self.stdout.write(
                    f"  #{cluster.number:<3} {cluster.name:<12} {len(papers):>4} papers:"
                    f" {_papers(papers)}"
                )
        for state, label in AnswerMembership.STATE_CHOICES:
            if state == AnswerMembership.ANSWERED:
                continue
            papers = [m.paper.paper_number for m in members if m.state == state]
            if papers:
                self.stdout.write(
                    f"  {label:<17} {len(papers):>4} papers: {_papers(papers)}"
                )

    def do_publish(self, opts) -> None:
        """Tag the clusters' marking tasks."""
        job = self._job(opts["job"])
        the_plan = publish.publish(
            job, self._user(opts["username"]), priority=opts["priority"]
        )
        for text, pks in the_plan.tags.items():
            self.stdout.write(f"  {text}: {len(pks)} tasks")
        self.stdout.write(
            f"Published job {job.pk}: {len(the_plan.tags)} tags on"
            f" {the_plan.task_count} marking tasks."
        )

    def do_unpublish(self, opts) -> None:
        """Remove what publishing added."""
        removed = publish.unpublish(self._job(opts["job"]))
        self.stdout.write(f"Removed {removed} tag links.")

    def do_cancel(self, opts) -> None:
        """Cancel a queued or running job."""
        jobs.cancel_job(self._job(opts["job"]))
        self.stdout.write("Cancellation requested.")

    def do_delete(self, opts) -> None:
        """Delete a job's groups."""
        job = self._job(opts["job"])
        jobs.delete_job(job)
        self.stdout.write(f"Deleted job {opts['job']} (scans and marks untouched).")


def _papers(numbers: list[int], most: int = 12) -> str:
    shown = ", ".join(map(str, numbers[:most]))
    return shown + (f", ... (+{len(numbers) - most})" if len(numbers) > most else "")
