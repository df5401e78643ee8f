# SPDX-License-Identifier: AGPL-3.0-or-later
"""Benchmark the clustering stages on this machine.

Usage::

    python -m plom_clustering_plugin.benchmark [--json OUT] [--quick] [--papers N ...]
        [--embedders hme-symbols:7 ...] [--crops N]

Measures preprocessing and embedding throughput (batch 1, as upstream Plom runs, and
batched), clustering time and peak memory for N = 100, 1,000 and 10,000 synthetic
embeddings (each in its own process, with a time and memory limit), the end-to-end
job time for N = 50 and 500 really scanned papers in a throwaway Plom database (each
N in its own process, see :mod:`.evaluation.end_to_end`), and this process's peak
RSS, headed by the CPU and the instruction sets its speed depends on.  Uses only data
it makes itself.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .argtypes import whole_number
from .evaluation.cluster_scaling import CLUSTERERS, measure
from .evaluation.machine import describe_machine, format_machine
from .evaluation.throughput import measure_throughput

#: Answers per question in the clustering runs.
CLUSTER_SIZES = (100, 1_000, 10_000)
#: Sizes run with ``--quick`` (the rest are reported as skipped).
QUICK_SIZES = (100, 1_000)
#: Scanned papers in the end-to-end runs (``--quick``: a handful).
PAPERS = (50, 500)
QUICK_PAPERS = (4,)
#: Scanned answer boxes per kind in the throughput runs (``--quick``: a few).
CROPS = 512
QUICK_CROPS = 32


def measure_end_to_end(papers: int, timeout: float) -> dict:
    """One end-to-end run in its own process (it sets up Django for its own database).

    Returns the child's JSON result, or ``{"papers": N, "error": ...}`` when it failed
    or ran out of time: a finding to print, not a crash.
    """
    with tempfile.TemporaryDirectory(prefix="plom-clustering-e2e-") as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-m",
            "plom_clustering_plugin.evaluation.end_to_end",
            "--papers",
            str(papers),
            "--json",
            str(out),
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return {"papers": papers, "error": f"killed after {timeout:.0f} s"}
        if not out.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return {"papers": papers, "error": " / ".join(tail) or "no result"}
        return json.loads(out.read_text(encoding="utf-8"))


def _papers(args: argparse.Namespace) -> tuple[int, ...]:
    if args.papers is not None:  # given, maybe empty: exactly those
        return tuple(args.papers)
    return QUICK_PAPERS if args.quick else PAPERS


def _crops(args: argparse.Namespace) -> int:
    if args.crops is not None:
        return args.crops
    return QUICK_CROPS if args.quick else CROPS


def run_benchmark(args: argparse.Namespace) -> dict:
    """Every measurement, as a JSON-ready dict."""
    sizes = QUICK_SIZES if args.quick else CLUSTER_SIZES
    clustering = []
    for n in CLUSTER_SIZES:
        for clusterer in CLUSTERERS:
            if n not in sizes:
                clustering.append(
                    {
                        "n": n,
                        "dim": args.dim,
                        "clusterer": clusterer,
                        "status": "skipped (--quick)",
                        "seconds": None,
                        "k": None,
                        "peak_rss_mb": None,
                        "detail": "",
                    }
                )
                continue
            print(f"clustering N={n} with {clusterer} ...", file=sys.stderr)
            clustering.append(
                measure(
                    n,
                    args.dim,
                    clusterer,
                    timeout=args.timeout,
                    memory_gb=args.memory_gb,
                )
            )
    crops = _crops(args)
    return {
        "machine": describe_machine(),
        "quick": args.quick,
        "crops": crops,
        "throughput": measure_throughput(crops, extra=args.embedders),
        "clustering": clustering,
        "end_to_end": [measure_end_to_end(n, args.e2e_timeout) for n in _papers(args)],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def format_benchmark(result: dict) -> str:
    """Plain-text tables of a benchmark result."""
    lines = [f"machine: {format_machine(result['machine'])}"]
    lines.append(
        f"throughput (crops per second, one process, {result['crops']} per kind)"
    )
    for row in result["throughput"]:
        lines.append(
            f"  {row['stage']:<16} {row['kind']:<4} {row['setting']:<28} "
            f"{row['crops_per_second']:>10,.0f}"
        )
    lines.append(
        f"clustering (synthetic L2-normalised embeddings, dim "
        f"{result['clustering'][0]['dim']}; own process each)"
    )
    lines.append(
        f"  {'clusterer':<13} {'N':>7}  {'status':<18} {'seconds':>8} {'k':>6} {'peak RSS MB':>12}"
    )
    for row in result["clustering"]:
        seconds = f"{row['seconds']:.2f}" if row["seconds"] is not None else "-"
        rss = f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] is not None else "-"
        k = str(row["k"]) if row["k"] is not None else "-"
        lines.append(
            f"  {row['clusterer']:<13} {row['n']:>7,}  {row['status']:<18} {seconds:>8} {k:>6} {rss:>12}"
            + (f"  ({row['detail']})" if row.get("detail") else "")
        )
    lines.append("end-to-end (scanned papers in a Plom database; warm model)")
    for run in result["end_to_end"]:
        if "error" in run:
            lines.append(f"  N = {run['papers']:>5}: failed: {run['error']}")
            continue
        lines.append(
            f"  N = {run['papers']:>5}: scanned and pushed in {run['build_seconds']} s,"
            f" peak RSS {run['peak_rss_mb']:.0f} MB"
        )
        for job in run["jobs"]:
            lines.append(
                f"    Q{job['question']} {job['kind']:<4} {job['model']:<16}"
                f" {job['status']:<9} {job['job_seconds']:>8.2f} s"
                f" {job['papers_per_second']:>7.1f} papers/s"
            )
    lines.append(f"peak RSS of this process: {result['peak_rss_mb']:.0f} MB")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the tables, write JSON; 0 on success."""
    parser = argparse.ArgumentParser(
        prog="python -m plom_clustering_plugin.benchmark",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("--json", help="write the result here")
    parser.add_argument(
        "--quick", action="store_true", help="small runs, skip N=10,000"
    )
    parser.add_argument(
        "--crops",
        type=whole_number(1),
        help="answer boxes per kind timed through each embedder"
        f" (default {CROPS}; --quick: {QUICK_CROPS})",
    )
    parser.add_argument("--dim", type=int, default=128, help="embedding size (128)")
    parser.add_argument(
        "--embedders",
        nargs="*",
        default=[],
        help="more embedders to time, e.g. an older version: hme-symbols:7",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="per clustering run, s"
    )
    parser.add_argument(
        "--memory-gb", type=float, default=8.0, help="per clustering run"
    )
    parser.add_argument(
        "--papers",
        type=int,
        nargs="*",
        help="end-to-end sizes (default 50 500; --quick: 4; none: skip)",
    )
    parser.add_argument(
        "--e2e-timeout", type=float, default=3600.0, help="per end-to-end run, s"
    )
    args = parser.parse_args(argv)
    result = run_benchmark(args)
    print(format_benchmark(result))
    if args.json:
        Path(args.json).write_text(
            json.dumps(result, indent=1) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
