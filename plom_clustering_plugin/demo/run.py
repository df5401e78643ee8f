# SPDX-License-Identifier: AGPL-3.0-or-later
"""``plom-clustering demo``: a throwaway Plom exam, scanned, clustered, browsable.

It needs no existing Plom deployment, no network and no LaTeX: SQLite and media go in a
folder of their own, the exam comes from Plom's wheel, the handwriting is generated,
the weights come through the real download path from the checkout's ``weights/``
folder, and the jobs run in a real Huey consumer process.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

#: Marks a folder as a demo's, so that re-running with the same --dir may wipe it.
MARKER = ".plom-clustering-demo"
MANAGER_PASSWORD = "clusterdemo"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plom-clustering demo", description=__doc__)
    parser.add_argument("--papers", type=int, default=60, help="How many students.")
    parser.add_argument("--dir", type=Path, help="Where the throwaway server lives.")
    parser.add_argument(
        "--answers",
        type=Path,
        help="A folder with labels.csv (image + label, or image + latex) and images:"
        " real answers to use instead of generated ones for that kind of question.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Makes the students.")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="Then serve Plom with the plugin on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=8000, help="Port for --serve.")
    return parser


class DemoError(Exception):
    """A demo step failed; the message names the step."""


def prepare_folder(base: Path | None) -> Path:
    """A fresh demo folder: a new temporary one, or ``base`` emptied if it was a demo's."""
    if base is None:
        return Path(tempfile.mkdtemp(prefix="plom-clustering-demo-"))
    if base.exists() and any(base.iterdir()):
        if not (base / MARKER).exists():
            raise DemoError(
                f"{base} is not empty and not a demo folder: choose another"
            )
        shutil.rmtree(base)  # an earlier demo's folder: start again from scratch
    base.mkdir(parents=True)
    return base


def setup_django(base: Path) -> None:
    """Point Plom at the demo folder (SQLite), start Django, create the database."""
    from .processes import demo_environment

    os.environ.update(demo_environment(base))
    checkout_weights = Path(__file__).resolve().parents[2] / "weights"
    if "PLOM_CLUSTERING_WEIGHTS_URL" not in os.environ and checkout_weights.is_dir():
        # The real first-use download path, from the released files of this checkout.
        os.environ["PLOM_CLUSTERING_WEIGHTS_URL"] = checkout_weights.as_uri()
    os.environ.setdefault("PLOM_CLUSTERING_MODEL_DIR", str(base / "model_cache"))
    (base / "plom_extra_static").mkdir(parents=True, exist_ok=True)
    (base / MARKER).touch()
    import django

    django.setup()
    for name in ("huey", "plom_server", "plom", "django"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("plom_database", "--create-database-metadata", verbosity=0)


def _answers(args) -> dict:
    from .answers import answers_from_folder, make_answers

    answers = make_answers(args.papers, seed=args.seed)
    if args.answers:
        question, given = answers_from_folder(args.answers, args.papers, seed=args.seed)
        answers[question] = given
    return answers


def _wait(job, label: str) -> None:
    """Follow a job to its end; a job in error stops the demo."""
    from plom_server.Base.models import HueyTaskTracker

    from ..services.progress import wait_for_job

    job = wait_for_job(job, sys.stdout, f"  {label}", interval=0.3)
    if job.status == HueyTaskTracker.ERROR:
        raise DemoError(job.message)


def _crops(exam, reports) -> dict:
    """Crops of every scanned answer, for the contact sheet."""
    from ..services.crops import AnswerProblem, CropSource

    crops = {}
    for report in reports:
        page = exam.answer_pages[report.question]
        source = CropSource(
            report.question, 1, page, exam.answer_rects[report.question]
        )
        for paper, crop in source.crops():
            if not isinstance(crop, AnswerProblem):
                crops[(report.question, paper.paper_number)] = crop
    return crops


def run(args) -> int:
    """The demo's steps; any failure names its step."""
    started = time.monotonic()
    step = "preparing the folder"
    processes = []
    try:
        base = prepare_folder(args.dir)
        print(f"Demo Plom server in {base}")
        step = "setting up Plom's database"
        setup_django(base)
        from ..models import AnswerMembership
        from ..services import jobs
        from .exam import build_scanned_exam, huey_immediately
        from .processes import start_consumer, start_web_server, stop
        from .report import contact_sheet, format_report, question_report

        step = "writing the answers and scanning the papers"
        answers = _answers(args)
        pngs = {q: {p: w.png for p, w in per.items()} for q, per in answers.items()}
        with huey_immediately():
            exam = build_scanned_exam(
                pngs,
                num_papers=args.papers,
                seed=args.seed,
                manager_password=MANAGER_PASSWORD,
            )
        print(f"Scanned {args.papers} papers in {time.monotonic() - started:.1f} s")
        step = "starting a Huey consumer"
        processes.append(start_consumer(base))
        reports = []
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
            _wait(job, f"question {question}")
            members = AnswerMembership.objects.filter(job=job).select_related(
                "paper", "cluster"
            )
            truth = {p: w.text for p, w in answers[question].items()}
            reports.append(
                question_report(
                    question,
                    job.get_kind_display(),
                    job,
                    members,
                    truth,
                    time.monotonic() - t0,
                )
            )
        for report in reports:
            print()
            print(format_report(report))
        step = "writing the contact sheet"
        sheet = base / "contact_sheet.html"
        sheet.write_text(contact_sheet(reports, _crops(exam, reports)))
        print(f"\nContact sheet: {sheet}")
        print(f"Done in {time.monotonic() - started:.1f} s.")
        if args.serve:
            step = "serving"
            processes.append(start_web_server(base, args.port))
            print(
                f"\nServing on http://127.0.0.1:{args.port}/clustering/ — log in as"
                f" 'manager' with password '{MANAGER_PASSWORD}'. Ctrl-C stops."
            )
            while all(p.poll() is None for p in processes):
                time.sleep(0.5)
            raise DemoError(f"a server process stopped; see {base}/web.log, huey.log")
    except KeyboardInterrupt:
        print("\nStopped.")
    except Exception as err:
        print(f"\nThe demo failed while {step}: {err}", file=sys.stderr)
        return 1
    finally:
        if processes:
            from .processes import stop

            stop(processes)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``plom-clustering demo``."""
    return run(_parser().parse_args(argv))
