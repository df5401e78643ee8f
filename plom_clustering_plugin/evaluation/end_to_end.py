# SPDX-License-Identifier: AGPL-3.0-or-later
r"""End-to-end job time: N really scanned papers in a throwaway Plom database.

Usage::

    python -m plom_clustering_plugin.evaluation.end_to_end --papers 50 [--json OUT]

Builds a Plom exam of N papers with the demo's generated handwriting (a letter in
question 1, an expression in question 2), scans, uploads and pushes the bundle through
Plom's own services (SQLite in a temporary folder), then runs one clustering job per
question exactly as the Huey task does (crop, preprocess, embed, cluster, store, in
this process) and times it.  Weights are fetched and loaded before the clock starts,
so the figures are a warm job's; loading is timed separately.  Run it as its own
process: it sets up Django for its temporary database.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

QUESTIONS = ((1, "mcq"), (2, "hme"))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(papers: int, seed: int = 0, keep: Path | None = None) -> dict:
    """Build ``papers`` scanned papers and time one job per question."""
    from ..demo.run import prepare_folder, setup_django

    base = prepare_folder(keep)
    try:
        setup_django(base)
        from ..demo.answers import make_answers
        from ..demo.exam import build_scanned_exam, huey_immediately
        from ..models import AnswerMembership
        from ..services import jobs
        from ..services.embedding import embedder_for

        answers = make_answers(papers, seed=seed)
        pngs = {q: {p: w.png for p, w in per.items()} for q, per in answers.items()}
        tick = time.perf_counter()
        with huey_immediately():
            exam = build_scanned_exam(pngs, num_papers=papers, seed=seed)
        result: dict = {
            "papers": papers,
            "build_seconds": round(time.perf_counter() - tick, 1),
            "rss_after_build_mb": round(_peak_rss_mb(), 1),
            "jobs": [],
        }
        for question, kind in QUESTIONS:
            tick = time.perf_counter()
            embedder = embedder_for(kind)  # download, verify, load: once per process
            load = time.perf_counter() - tick
            tick = time.perf_counter()
            with huey_immediately():  # the task body runs here, in this process
                job = jobs.start_job(
                    question_index=question,
                    version=1,
                    rect=exam.answer_rects[question],
                    kind=kind,
                    user=exam.manager,
                )
            seconds = time.perf_counter() - tick
            job.refresh_from_db()
            stored = AnswerMembership.objects.filter(job=job).count()
            result["jobs"].append(
                {
                    "question": question,
                    "kind": kind,
                    "model": f"{embedder.name}@{embedder.version}",
                    "status": job.get_status_display(),
                    "message": job.message,
                    "answers_stored": stored,
                    "model_load_seconds": round(load, 2),
                    "job_seconds": round(seconds, 2),
                    "papers_per_second": round(papers / seconds, 1),
                }
            )
        result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        return result
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def format_result(result: dict) -> str:
    """A few lines for the terminal."""
    lines = [
        f"N = {result['papers']} papers: built and scanned in"
        f" {result['build_seconds']} s; peak RSS {result['peak_rss_mb']} MB"
    ]
    for job in result["jobs"]:
        lines.append(
            f"  Q{job['question']} {job['kind']} ({job['model']}): {job['status']},"
            f" {job['job_seconds']} s ({job['papers_per_second']} papers/s),"
            f" model load {job['model_load_seconds']} s"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; 0 when every job completed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--keep", type=Path, help="keep the Plom folder here")
    args = parser.parse_args(argv)
    if args.papers < 1:
        parser.error("--papers must be at least 1")
    result = measure(args.papers, args.seed, args.keep)
    print(format_result(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if all(j["status"] == "Complete" for j in result["jobs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
