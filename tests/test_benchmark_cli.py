# SPDX-License-Identifier: AGPL-3.0-or-later
import io
import json
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from django.test import SimpleTestCase

from plom_clustering_plugin import benchmark
from plom_clustering_plugin.evaluation.cluster_scaling import measure
from plom_clustering_plugin.evaluation.machine import (
    cpu_flags,
    describe_machine,
    format_machine,
)
from plom_clustering_plugin.evaluation.methods import EMBEDDERS
from plom_clustering_plugin.training.cpu import bf16_is_fast


def run_benchmark(test: SimpleTestCase, *argv: str) -> tuple[dict, str]:
    """Run the command line; its JSON result and what it printed."""
    with tempfile.TemporaryDirectory() as tmp:
        out_json = Path(tmp, "bench.json")
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(io.StringIO()):
            code = benchmark.main([*argv, "--json", str(out_json)])
        test.assertEqual(code, 0)
        return json.loads(out_json.read_text()), out.getvalue()


class BenchmarkQuickTest(SimpleTestCase):
    def test_quick_run_prints_and_writes_every_measurement(self):
        result, text = run_benchmark(self, "--quick", "--embedders", "hme-symbols:7")
        self.assertIn("end-to-end (scanned papers", text)
        machine = result["machine"]
        self.assertGreaterEqual(machine["cores"], 1)
        self.assertIn(f"machine: {machine['cpu']}, {machine['cores']} cores", text)
        self.assertIn("peak RSS of this process", text)
        self.assertIn("skipped (--quick)", text)
        (run,) = result["end_to_end"]
        self.assertEqual(run["papers"], benchmark.QUICK_PAPERS[0], run)
        self.assertEqual([j["kind"] for j in run["jobs"]], ["mcq", "hme"])
        for job in run["jobs"]:
            self.assertEqual(job["status"], "Complete", job)
            self.assertEqual(job["answers_stored"], run["papers"])
            self.assertGreater(job["job_seconds"], 0)
        self.assertGreater(result["peak_rss_mb"], 10)
        for name in [*EMBEDDERS, "hme-symbols:7"]:  # an older version on request
            for kind in ("hme", "mcq"):
                settings = {
                    r["setting"]: r["crops_per_second"]
                    for r in result["throughput"]
                    if r["stage"] == f"embed {name}" and r["kind"] == kind
                }
                self.assertEqual(set(settings), {"batch 1", "batch 64"})
                self.assertTrue(all(rate > 0 for rate in settings.values()))
        self.assertTrue(any(r["stage"] == "preprocess" for r in result["throughput"]))
        by_size = {(r["n"], r["clusterer"]): r for r in result["clustering"]}
        for clusterer in ("project", "upstream-mcq"):
            for n in (100, 1000):
                row = by_size[(n, clusterer)]
                self.assertEqual(row["status"], "ok", row)
                self.assertGreater(row["k"], 1)
                self.assertGreater(row["peak_rss_mb"], 10)
            self.assertEqual(
                by_size[(10_000, clusterer)]["status"], "skipped (--quick)"
            )

    def test_a_run_over_its_time_limit_is_reported_not_raised(self):
        row = measure(2_000, 32, "project", timeout=0.2)
        self.assertEqual(row["status"], "timeout")
        self.assertIsNone(row["seconds"])
        self.assertIn("killed after", row["detail"])


class BenchmarkCropsTest(SimpleTestCase):
    def test_crops_sets_how_many_answer_boxes_each_embedder_times(self):
        result, text = run_benchmark(self, "--quick", "--crops", "5", "--papers")
        self.assertEqual(result["crops"], 5)
        self.assertIn("5 per kind", text)
        self.assertEqual(result["end_to_end"], [])  # --papers with no sizes: none
        rates = [r["crops_per_second"] for r in result["throughput"]]
        self.assertTrue(rates and all(rate > 0 for rate in rates))

    def test_zero_crops_is_refused_with_the_rule(self):
        err = io.StringIO()
        with redirect_stderr(err), self.assertRaises(SystemExit):
            benchmark.main(["--crops", "0"])
        self.assertIn("must be 1 or more", err.getvalue())


class MachineTest(SimpleTestCase):
    def test_the_cpu_model_and_the_features_that_move_speed_are_read(self):
        with tempfile.TemporaryDirectory() as tmp:
            cpuinfo = Path(tmp, "cpuinfo")
            processor = (
                "model name\t: Example CPU 9000\nflags\t\t: fpu sse2 avx avx2 fma\n"
            )
            cpuinfo.write_text("processor\t: 0\n" + processor * 2)
            machine = describe_machine(cpuinfo)
            self.assertEqual(machine["cpu"], "Example CPU 9000")
            self.assertEqual(machine["features"], ["avx2"])
            line = format_machine(machine)
            self.assertIn("Example CPU 9000", line)
            self.assertIn("avx2 (not avx512f, avx512_vnni", line)
            # No bf16 instructions: training stays in float32.
            self.assertFalse(bf16_is_fast(cpuinfo))
            cpuinfo.write_text(processor.replace("fma", "fma avx512f avx512_bf16"))
            self.assertTrue(bf16_is_fast(cpuinfo))
            self.assertEqual(cpu_flags(Path(tmp, "missing")), set())
