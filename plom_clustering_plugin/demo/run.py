# SPDX-License-Identifier: AGPL-3.0-or-later
"""``plom-clustering demo``: a throwaway Plom exam, scanned, clustered, summarised.

It needs no existing Plom deployment, no network and no LaTeX: SQLite and media go in a
folder of their own, the exam comes from Plom's wheel and the handwriting is generated.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plom-clustering demo", description=__doc__)
    parser.add_argument("--papers", type=int, default=60, help="How many students.")
    parser.add_argument("--dir", type=Path, help="Where the throwaway server lives.")
    parser.add_argument("--seed", type=int, default=0, help="Makes the students.")
    return parser


def _setup_django(base: Path) -> None:
    """Point Plom at the demo folder (SQLite) and start Django with the plugin."""
    os.environ["PLOM_BASE_DIR"] = str(base)
    os.environ["PLOM_DATABASE_BACKEND"] = "sqlite"
    os.environ["DJANGO_SETTINGS_MODULE"] = "plom_clustering_plugin.settings"
    (base / "plom_extra_static").mkdir(parents=True, exist_ok=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("plom_database", "--create-database-metadata", verbosity=0)


def main(argv: list[str] | None = None) -> int:
    """Run the demo and print a summary per question."""
    args = _parser().parse_args(argv)
    base = args.dir or Path(tempfile.mkdtemp(prefix="plom-clustering-demo-"))
    if base.exists() and any(base.iterdir()):
        print(f"{base} is not empty: give --dir a new folder.", file=sys.stderr)
        return 2
    base.mkdir(parents=True, exist_ok=True)
    print(f"Demo Plom server in {base}")
    started = time.monotonic()
    step = "setting up Django"
    try:
        _setup_django(base)
        from ..models import AnswerMembership
        from ..services import jobs
        from .answers import make_answers
        from .exam import build_scanned_exam, huey_immediately

        step = "writing and scanning the papers"
        answers = make_answers(args.papers, seed=args.seed)
        pngs = {q: {p: w.png for p, w in per.items()} for q, per in answers.items()}
        with huey_immediately():
            exam = build_scanned_exam(pngs, num_papers=args.papers, seed=args.seed)
            print(f"Scanned {args.papers} papers in {time.monotonic() - started:.1f} s")
            for question, kind in ((1, "mcq"), (2, "hme")):
                step = f"clustering question {question}"
                t0 = time.monotonic()
                job = jobs.start_job(
                    question_index=question,
                    version=1,
                    rect=exam.answer_rects[question],
                    kind=kind,
                    user=exam.manager,
                )
                job.refresh_from_db()
                if job.get_status_display() != "Complete":
                    raise RuntimeError(job.message)
                members = AnswerMembership.objects.filter(job=job).select_related(
                    "paper", "cluster"
                )
                truth = {p: w.text for p, w in answers[question].items()}
                _print_summary(question, job, members, truth, time.monotonic() - t0)
    except Exception as err:
        print(f"The demo failed while {step}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"Done in {time.monotonic() - started:.1f} s. Data: {base}")
    return 0


def _print_summary(question, job, members, truth, seconds) -> None:
    """Clusters with size and purity against the known answers, then the bins."""
    print(f"\nQuestion {question} ({job.get_kind_display()}): {job.message}, {seconds:.1f} s")
    print(f"  {'cluster':<14}{'size':>6}{'purity':>8}  most common answer")
    by_cluster: dict[str, list[str | None]] = {}
    bins: dict[str, int] = Counter()
    for m in members:
        if m.cluster is not None:
            by_cluster.setdefault(m.cluster.name, []).append(truth[m.paper.paper_number])
        else:
            bins[m.get_state_display()] += 1
    for name, texts in sorted(by_cluster.items(), key=lambda kv: -len(kv[1])):
        top, count = Counter(texts).most_common(1)[0]
        print(f"  {name:<14}{len(texts):>6}{count / len(texts):>8.2f}  {top}")
    for label, count in bins.items():
        print(f"  [{label}]{'':<{12 - len(label)}}{count:>6}")
