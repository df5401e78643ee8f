# SPDX-License-Identifier: AGPL-3.0-or-later
"""Time a clusterer on N synthetic embeddings in a child process, with limits.

Each run is its own process so that its peak memory is measured on its own, and so
that running out of time or memory is reported as a finding instead of taking the
benchmark down.  The child is this module::

    python -m plom_clustering_plugin.evaluation.cluster_scaling N DIM CLUSTERER SEED

which prints one JSON line ``{"seconds": ..., "k": ...}``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np

#: Clusterers the child can run.
CLUSTERERS = ("project", "upstream-mcq")


def run_clusterer(n: int, dim: int, clusterer: str, seed: int) -> dict:
    """Cluster ``n`` synthetic vectors of ``dim`` dimensions; seconds and k found."""
    from .synthetic import clustered_embeddings

    vectors = clustered_embeddings(n, dim, np.random.default_rng(seed))
    if clusterer == "project":
        from ..ml.clustering import cluster_embeddings

        start = time.perf_counter()
        k = cluster_embeddings(vectors).k
    else:
        from .baselines import UpstreamFailure, upstream_sweep

        start = time.perf_counter()
        try:
            k = len(np.unique(upstream_sweep(vectors.astype(np.float64), "mcq")))
        except UpstreamFailure as err:
            return {
                "seconds": time.perf_counter() - start,
                "k": None,
                "error": str(err),
            }
    return {"seconds": time.perf_counter() - start, "k": int(k)}


def _limit_memory(limit_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return apply


def measure(
    n: int,
    dim: int,
    clusterer: str,
    *,
    seed: int = 0,
    timeout: float = 300.0,
    memory_gb: float = 8.0,
) -> dict:
    """Run one clustering in a child process and report how it went.

    Returns:
        ``status`` (``ok``, ``timeout``, ``out of memory``, ``error``), ``seconds``,
        ``k``, ``peak_rss_mb`` of the child, and ``detail`` when it did not finish.
    """
    command = [
        sys.executable,
        "-m",
        __name__,
        str(n),
        str(dim),
        clusterer,
        str(seed),
    ]
    # At most 2 BLAS threads unless the caller chose: the target machine has 2 cores.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=_limit_memory(int(memory_gb * 2**30)),
    )
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            child.send_signal(signal.SIGKILL)
            timed_out = True
            pid, status, usage = os.wait4(child.pid, 0)
            break
        time.sleep(0.05)
    child.returncode = os.waitstatus_to_exitcode(status)
    out, err = child.stdout.read().decode(), child.stderr.read().decode()
    child.stdout.close()
    child.stderr.close()
    report = {
        "n": n,
        "dim": dim,
        "clusterer": clusterer,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "seconds": None,
        "k": None,
    }
    if timed_out:
        return {
            **report,
            "status": "timeout",
            "detail": f"killed after {timeout:.0f} s",
        }
    if child.returncode != 0:
        memory = "MemoryError" in err or "Unable to allocate" in err
        last = (
            err.strip().splitlines()[-1] if err.strip() else f"exit {child.returncode}"
        )
        status = "out of memory" if memory else "error"
        return {**report, "status": status, "detail": last}
    result = json.loads(out.strip().splitlines()[-1])
    status = "error" if result.get("error") else "ok"
    return {**report, **result, "status": status, "detail": result.get("error", "")}


if __name__ == "__main__":
    size, dims, name, seed_arg = sys.argv[1:5]
    if name not in CLUSTERERS:
        sys.exit(f"unknown clusterer {name!r}; known: {', '.join(CLUSTERERS)}")
    print(json.dumps(run_clusterer(int(size), int(dims), name, int(seed_arg))))
