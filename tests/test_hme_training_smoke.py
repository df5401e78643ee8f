# SPDX-License-Identifier: AGPL-3.0-or-later
"""The HME training CLI end to end on a tiny labels.csv folder it writes itself."""

from __future__ import annotations

import csv
import importlib.util
import io
import re
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock, skipIf

import numpy as np
from django.test import SimpleTestCase
from PIL import Image

from plom_clustering_plugin.demo.handwriting import PLOM_FONTS, font_path
from tests.test_hme import render_expression

NO_TORCH = importlib.util.find_spec("torch") is None
#: Repeated expressions (LaTeX, drawn text, exponent) and one-offs.
REPEATED = [
    ("x + 1 = 5", "x+1=5", ""),
    ("3 y - 2", "3y-2", ""),
    ("( a + b ) ^ { 3 }", "(a+b)", "3"),
    ("7 / 4 < 9", "7/4<9", ""),
    ("2 x = 8", "2x=8", ""),
]
ONE_OFFS = [("y - 4", "y-4"), ("b + 6 = a", "b+6=a"), ("9 x", "9x")]


def plom_fonts() -> list[str]:
    """The handwriting fonts in Plom's wheel (always installed, unlike Debian's)."""
    return sorted(str(font_path(name)) for name in PLOM_FONTS)


def write_dataset(folder: Path) -> None:
    """A crohme-dev-like folder: ``labels.csv`` + 256x256 PNGs, six "writers" each."""
    fonts = plom_fonts()
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    rows = []
    items = [(latex, text, sup, fonts) for latex, text, sup in REPEATED]
    items += [(latex, text, "", fonts[:1]) for latex, text in ONE_OFFS]
    for latex, text, sup, writers in items:
        for font in writers:
            drawn = Image.fromarray(render_expression(text, sup, font, rng))
            image = Image.new("L", (256, 256), 255)
            image.paste(drawn.resize((256, 86)), (0, 85))
            name = f"images/{len(rows):03d}.png"
            image.save(folder / name)
            rows.append({"image": name, "latex": latex, "collection": "test"})
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["image", "latex", "collection"])
        writer.writeheader()
        writer.writerows(rows)


def short_run(root: Path, *extra: str) -> str:
    """A ``--smoke`` training run on a dataset written under ``root``; its log.

    Typeset in two Plom fonts, with 30 % of the training expressions held out to
    calibrate on; ``extra`` options are added.  Fails the caller on a non-zero exit.
    """
    from plom_clustering_plugin.training import hme_train

    write_dataset(root / "data")
    argv = ["--data", str(root / "data"), "--out", str(root / "out")]
    argv += ["--ckpt-dir", str(root / "ckpt"), "--smoke", "--calib-share"]
    argv += ["0.3", "--synth-fonts", ",".join(plom_fonts()[:2]), *extra]
    with redirect_stdout(io.StringIO()) as log:
        code = hme_train.main(argv)
    if code != 0:
        raise AssertionError(f"hme_train exited {code}:\n{log.getvalue()}")
    return log.getvalue()


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class HmeTrainingSmokeTests(SimpleTestCase):
    def test_smoke_run_trains_exports_and_resumes(self):
        import onnxruntime as ort
        import torch

        from plom_clustering_plugin.ml.hme import HmeEmbedder, read_entry
        from plom_clustering_plugin.ml.preprocess import prepare
        from plom_clustering_plugin.training import (
            hme_distil,
            hme_ensemble,
            hme_quantise,
            hme_train,
            hme_views,
        )

        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            write_dataset(root / "data")
            common = ["--data", str(root / "data"), "--out", str(root / "out")]
            common += ["--ckpt-dir", str(root / "ckpt"), "--seed", "0", "--smoke"]
            common += ["--synth-fonts", ",".join(plom_fonts()[:2])]
            common += ["--calib-share", "0.3", "--synth-symbols", "1"]
            common += ["--lone-boost", "2", "--hard-share", "0.5"]
            common += ["--dot-reach", "8", "--proxy", "0.25"]
            common += ["--count", "1", "--views-loss", "2/3", "--views-from", "2"]
            # CPU time, not wall time: CI machines are shared and the budget is ours.
            started = time.process_time()
            with redirect_stdout(io.StringIO()) as log:
                self.assertEqual(hme_train.main(common), 0)
            self.assertLess(time.process_time() - started, 60)
            # By default the schedule counts rows, as the shipped models' did.
            saved = torch.load(root / "ckpt" / "last.pt", weights_only=False)
            rows = int(re.search(r"(\d+) training images", log.getvalue())[1])
            self.assertEqual(saved["steps_per_epoch"], rows // 4)  # smoke: 4 pairs
            # Learnt expression centres: their loss is logged every epoch.
            proxy = re.findall(r'^\{"epoch".*"proxy": ([-\d.e]+)', log.getvalue(), re.M)
            self.assertEqual(len(proxy), 2, log.getvalue())  # smoke: 2 epochs
            self.assertTrue(all(np.isfinite(float(p)) for p in proxy))
            counted = re.findall(
                r'^\{"epoch".*"count": ([-\d.e]+)', log.getvalue(), re.M
            )
            self.assertEqual(len(counted), 2, log.getvalue())
            self.assertTrue(all(np.isfinite(float(n)) for n in counted))
            proxies = saved["proxies"]
            # Typeset expressions, then typeset lone symbols.
            renders = re.findall(
                r"\d+ synthetic renders of \d+ expressions", log.getvalue()
            )
            self.assertEqual(len(renders), 2, log.getvalue())
            onnx_path = root / "out" / "hme-symbols-v3.onnx"
            entry_path = root / "out" / "hme-symbols-v3.entry.json"
            checkpoint = root / "ckpt" / "last.pt"
            self.assertTrue(checkpoint.exists())

            entry = read_entry(entry_path)
            self.assertEqual((entry.name, entry.version), ("hme-symbols", "3"))
            self.assertEqual(entry.output.meaning, "embedding")
            self.assertIn("CC BY-NC-SA", entry.licence)
            self.assertIn("--smoke", entry.training_command)
            self.assertIn("held out to calibrate", entry.training_data)
            self.assertIn(
                "50% of anchors batched with their nearest", entry.description
            )
            self.assertIn("symbol-count loss (1)", entry.description)
            self.assertIn("expression-centre loss (0.25)", entry.description)
            self.assertIn("reading shrunk to 2/3", entry.description)
            self.assertIn("--shrink 2/3) from epoch 2", entry.description)
            self.assertIn("review_confidence", entry.metrics)
            self.assertEqual(
                entry.metrics["training"]["split"],
                {"seed": 0, "val_share": 0.2, "calib_share": 0.3, "fold_val": False},
            )
            session = ort.InferenceSession(
                str(onnx_path), providers=["CPUExecutionProvider"]
            )
            ink = np.zeros((3, 1, *entry.input.canvas), np.float32)
            ink[:, :, 20:30, 40:150] = 1.0
            out = session.run(None, {entry.input.name: ink})[0]
            self.assertEqual(out.shape[0], 3)
            np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)

            gray = np.asarray(Image.open(root / "data" / "images" / "000.png"))
            vectors = HmeEmbedder.from_files(onnx_path, entry_path).embed(
                [prepare(gray)]
            )
            self.assertEqual(vectors.shape, (1, out.shape[1]))
            self.assertEqual(proxies.shape[1], vectors.shape[1])

            def derived(tool, version: str, *extra: str):
                """Run a tool that derives a model from this run; its entry and a read."""
                argv = [*common[:2], "--out", str(root / version), "--version", version]
                argv += ["--calib-share", "0.3", "--smoke"]
                argv += ["--cache-dir", str(root / "ckpt"), *extra]
                with redirect_stdout(io.StringIO()):
                    self.assertEqual(tool.main(argv), 0)
                made = root / version / f"hme-symbols-v{version}"
                files = made.with_suffix(".onnx"), made.with_suffix(".entry.json")
                read = HmeEmbedder.from_files(*files).embed([prepare(gray)])
                return read_entry(files[1]), read

            # The run's images kept their dots: every model made from it says so.
            self.assertEqual(entry.input.dot_reach, 8)
            self.assertIn("specks within 8 px of writing kept", entry.description)
            # The views wrapper on the same run: same input, same width, own entry.
            wrapped, read = derived(hme_views, "3v", "--model", str(onnx_path))
            self.assertEqual(wrapped.input, entry.input)
            self.assertIn("at full size and at 2/3", wrapped.description)
            self.assertIn(entry.training_command, wrapped.training_command)
            self.assertIn("hme_views", wrapped.training_command)
            self.assertEqual(wrapped.metrics["training"]["source_sha256"], entry.sha256)
            self.assertIn("true_k", wrapped.metrics["val_clean"])
            self.assertEqual(read.shape, vectors.shape)
            self.assertEqual(
                wrapped.metrics["training"]["split"], entry.metrics["training"]["split"]
            )
            # Another split would calibrate on rows the run learnt: refused, no file.
            argv = [*common[:2], "--model", str(onnx_path), "--out", str(root / "3f")]
            argv += ["--version", "3f", "--calib-share", "0.3", "--fold-val"]
            with redirect_stderr(io.StringIO()) as err:
                self.assertEqual(hme_views.main(argv), 2)
            self.assertIn("(asked: --fold-val)", err.getvalue())
            self.assertFalse((root / "3f").exists())

            # The run and its views model side by side: one file, both widths.
            both, read = derived(
                hme_ensemble,
                "3e",
                *("--model", str(onnx_path)),
                *("--model", str(root / "3v" / "hme-symbols-v3v.onnx")),
            )
            self.assertEqual(both.input, entry.input)
            self.assertIn("hme_ensemble", both.training_command)
            members = both.metrics["training"]["members"]
            self.assertEqual(
                [m["sha256"] for m in members], [entry.sha256, wrapped.sha256]
            )
            self.assertIn("true_k", both.metrics["val_clean"])
            self.assertEqual(read.shape, (1, 2 * vectors.shape[1]))

            # The run with integer convolutions: same input and width, own entry.
            quantised, read = derived(
                hme_quantise, "3q", "--model", str(onnx_path), "--range-images", "8"
            )
            self.assertEqual(quantised.input, entry.input)
            self.assertIn("8-bit integer convolutions", quantised.description)
            self.assertIn("hme_quantise", quantised.training_command)
            agree = quantised.metrics["training"]["cosine_to_source"]
            self.assertGreaterEqual(agree["mean"], hme_quantise.MIN_MEAN_COSINE)
            self.assertEqual(read.shape, vectors.shape)
            # A bar no quantised graph can meet: refused, and no file is left behind.
            bar = mock.patch.object(hme_quantise, "MIN_MEAN_COSINE", 1.01)
            argv = ["--data", str(root / "data"), "--model", str(onnx_path)]
            argv += ["--out", str(root / "3r"), "--version", "3r", "--calib-share"]
            argv += ["0.3", "--range-images", "8", "--cache-dir", str(root / "ckpt")]
            with (
                bar,
                redirect_stdout(io.StringIO()),
                redirect_stderr(io.StringIO()) as err,
            ):
                self.assertEqual(hme_quantise.main(argv), 1)
            self.assertIn("the file was not kept", err.getvalue())
            self.assertEqual(list((root / "3r").glob("*.onnx")), [])

            # Distilling the views model into its own network: one reading, own entry.
            distil = [*common[:2], "--out", str(root / "distil"), "--version", "3d"]
            distil += ["--student", str(onnx_path), "--calib-share", "0.3", "--smoke"]
            distil += ["--teacher", str(root / "3v" / "hme-symbols-v3v.onnx")]
            distil += ["--epochs", "2", "--cache-dir", str(root / "ckpt"), "--augment"]
            with redirect_stdout(io.StringIO()) as log:
                self.assertEqual(hme_distil.main(distil), 0)
            self.assertIn("loaded", log.getvalue())
            distilled = read_entry(root / "distil" / "hme-symbols-v3d.entry.json")
            self.assertEqual(distilled.input, entry.input)
            self.assertIn("in one reading", distilled.description)
            self.assertIn("augmented each batch", distilled.description)
            self.assertIn("hme_distil", distilled.training_command)
            trained = distilled.metrics["training"]
            self.assertEqual(trained["teacher_sha256"], wrapped.sha256)
            self.assertEqual([r["epoch"] for r in trained["history"]], [1, 2])
            self.assertNotEqual(distilled.sha256, entry.sha256)
            # Run again with --resume: the finished run is not trained further.
            with redirect_stdout(io.StringIO()) as log:
                self.assertEqual(hme_distil.main([*distil, "--resume"]), 0)
            self.assertIn("resumed", log.getvalue())
            self.assertNotIn('"epoch": 3', log.getvalue())
            # ...and a checkpoint made for another teacher is refused, not continued.
            other = [*distil, "--resume", "--teacher", str(onnx_path)]
            with self.assertRaisesRegex(SystemExit, "was made with --teacher"):
                hme_distil.main(other)

            # A checkpoint resumed with another depth stops with a clear message.
            with self.assertRaisesRegex(SystemExit, "the checkpoint has --deeper 0"):
                hme_train.main([*common, "--resume", str(checkpoint), "--deeper", "1"])
            with self.assertRaisesRegex(SystemExit, "has --input-scales 2, this run"):
                hme_train.main(
                    [*common, "--resume", str(checkpoint), "--input-scales", "3"]
                )
            # So does one resumed with another width (--smoke trains width 4).
            saved = torch.load(checkpoint, weights_only=False)["args"]
            wider = hme_train.parse_args(common)
            wider.width = 8
            with self.assertRaisesRegex(SystemExit, "the checkpoint has --width 4"):
                hme_train.check_same_network(saved, wider, str(checkpoint))
            # And one resumed on another learning-rate curve, which would load.
            with self.assertRaisesRegex(SystemExit, "has --lr-horizon None, this run"):
                hme_train.main(
                    [*common, "--resume", str(checkpoint), "--lr-horizon", "1"]
                )

            # And one resumed without the centres its optimiser holds.
            with self.assertRaisesRegex(SystemExit, "has --proxy 0.25, this run"):
                hme_train.main([*common, "--resume", str(checkpoint), "--proxy", "0"])

            # And one resumed on images with other specks kept.
            with self.assertRaisesRegex(SystemExit, "has --dot-reach 8, this run"):
                hme_train.main(
                    [*common, "--resume", str(checkpoint), "--dot-reach", "0"]
                )

            # Resuming a finished run skips training and exports the same weights.
            first = onnx_path.read_bytes()
            resume = [*common, "--resume", str(checkpoint)]
            with redirect_stdout(io.StringIO()) as log:
                self.assertEqual(hme_train.main(resume), 0)
            self.assertIn("resumed", log.getvalue())
            self.assertEqual(read_entry(entry_path).seed, 0)
            self.assertEqual(len(onnx_path.read_bytes()), len(first))


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class ScheduleTests(SimpleTestCase):
    def test_a_horizon_of_one_decays_to_the_floor_at_the_last_epoch(self):
        import torch

        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            short_run(root, "--lr-horizon", "1")
            saved = torch.load(root / "ckpt" / "last.pt", weights_only=False)
            ran = saved["scheduler"]["last_epoch"]
            self.assertAlmostEqual(ran, 2 * saved["steps_per_epoch"], delta=2)
            self.assertAlmostEqual(saved["scheduler"]["_last_lr"][0] / 3e-3, 0.02, 2)

    def test_the_horizon_is_a_number_above_zero(self):
        from plom_clustering_plugin.training.hme_train import parse_args

        base = ["--data", "d", "--out", "o"]
        self.assertIsNone(parse_args(base).lr_horizon)
        self.assertEqual(parse_args([*base, "--lr-horizon", "2.07"]).lr_horizon, 2.07)
        for bad in ("0", "-1", "nan", "inf", "x"):
            with redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
                parse_args([*base, "--lr-horizon", bad])


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class EpochAnchorTests(SimpleTestCase):
    def test_every_real_row_once_plus_a_share_of_synthetic_rows(self):
        from plom_clustering_plugin.training.hme_train import epoch_anchors

        rng = np.random.default_rng(0)
        anchors = epoch_anchors(100, 400, 0.25, rng)
        real = anchors[anchors < 100]
        self.assertEqual(sorted(real.tolist()), list(range(100)))
        synthetic = anchors[anchors >= 100]
        self.assertEqual(len(synthetic), round(100 * 0.25 / 0.75))
        self.assertEqual(len(set(synthetic.tolist())), len(synthetic))
        self.assertTrue((synthetic < 400).all())

    def test_boost_repeats_the_chosen_rows_only(self):
        from plom_clustering_plugin.training.hme_train import boost

        chosen = np.array([False, True, False, True, False])
        anchors = np.array([4, 3, 0, 1])
        self.assertEqual(boost(anchors, chosen, 3).tolist(), [4, 3, 0, 1, 3, 1, 3, 1])
        self.assertEqual(boost(anchors, chosen, 1).tolist(), anchors.tolist())

    def test_the_schedule_spans_the_batches_an_epoch_runs(self):
        from argparse import Namespace

        from plom_clustering_plugin.training import hme_data
        from plom_clustering_plugin.training.hme_train import (
            boost,
            epoch_anchors,
            epoch_steps,
        )

        # 100 real rows, 250 typeset ones of which 50 are lone symbols (boosted).
        lone = np.zeros(350, bool)
        lone[300:] = True
        group = np.arange(350) // 2
        args = Namespace(synth_share=0.33, lone_boost=2, batch_pairs=8)
        steps = epoch_steps(100, lone, args, seed=0)
        for epoch in range(6):
            rng = np.random.default_rng([0, epoch])
            anchors = boost(epoch_anchors(100, 350, 0.33, rng), lone, 2)
            batches = hme_data.pair_batches(group, 8, rng, anchors)
            self.assertLessEqual(abs(len(batches) - steps), 2)
        # Sessions 3-16 scheduled one step per 8 rows: twice the steps run.
        self.assertLess(steps, 350 // 8 * 0.6)

    def test_no_synthetic_rows_means_the_real_rows_only(self):
        from plom_clustering_plugin.training.hme_train import epoch_anchors

        rng = np.random.default_rng(0)
        self.assertEqual(epoch_anchors(7, 7, 0.3, rng).tolist(), list(range(7)))
        self.assertEqual(epoch_anchors(7, 20, 0.0, rng).tolist(), list(range(7)))


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class SkippedStepWarningTests(SimpleTestCase):
    def test_many_skipped_steps_are_warned_about(self):
        from plom_clustering_plugin.training.hme_train import skipped_warning

        self.assertIsNone(skipped_warning(0, 150, True))
        self.assertIsNone(skipped_warning(3, 150, True))
        self.assertIsNone(skipped_warning(0, 0, True))
        warning = skipped_warning(30, 150, True)
        self.assertIn("30 of 150 steps", warning)
        self.assertIn("--bf16 off", warning)
        self.assertNotIn("--bf16", skipped_warning(30, 150, False))

    def test_a_pace_that_would_hit_the_time_cap_is_warned_about(self):
        from plom_clustering_plugin.training.hme_train import pace_warning

        # 47 epochs left at 1.1 min fit in 110 min; at 3.1 min they do not.
        self.assertIsNone(pace_warning(1.1, 1, 48, 110.0, True))
        warning = pace_warning(3.1, 1, 48, 110.0, False)
        self.assertIn("need about 146 min, 110 remain", warning)
        self.assertIn("stop near epoch 36 of 48", warning)
        self.assertIn("without native bf16", warning)
        self.assertIn("--resume", warning)
        # Already past the cap: it stops at once.
        self.assertIn("near epoch 5 of 48", pace_warning(2.0, 5, 48, -1.0, True))


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class NetworkShapeTests(SimpleTestCase):
    def test_deeper_adds_layers_at_one_eighth_and_keeps_the_outputs(self):
        import torch

        from plom_clustering_plugin.training.hme_model import GRID, HmeNet

        torch.manual_seed(0)
        x = torch.rand(2, 1, 48, 192)
        shapes, sizes = [], []
        for deeper in (0, 2):
            net = HmeNet(7, width=4, deeper=deeper).eval()
            logits, emb = net(x)
            shapes.append((tuple(logits.shape), tuple(emb.shape)))
            sizes.append(sum(p.numel() for p in net.parameters()))
        self.assertEqual(shapes[0], ((2, 7), (2, 7 * (1 + GRID[0] * GRID[1]))))
        self.assertEqual(shapes[0], shapes[1])
        # Two 3x3 convolutions of 6w channels plus their BatchNorm scales and shifts.
        channels = 6 * 4
        self.assertEqual(
            sizes[1] - sizes[0], 2 * (channels * channels * 9 + 2 * channels)
        )

    def test_a_third_input_scale_reads_a_quarter_size_canvas_with_the_same_weights(
        self,
    ):
        import torch
        from torch.nn import functional as F

        from plom_clustering_plugin.training.hme_model import GRID, HmeNet

        torch.manual_seed(0)
        x = torch.rand(2, 1, 48, 192)
        two = HmeNet(7, width=4).eval()
        three = HmeNet(7, width=4, input_scales=3).eval()
        three.load_state_dict(two.state_dict())
        with torch.no_grad():
            maps = three.scales(x)
            quarter = three.symbols(F.avg_pool2d(x, 4))
            logits, emb = three(x)
        self.assertEqual(len(maps), 3)
        self.assertTrue(torch.allclose(maps[2], quarter, atol=1e-6))
        self.assertEqual(tuple(emb.shape), (2, 7 * (1 + GRID[0] * GRID[1])))
        self.assertEqual(tuple(logits.shape), (2, 7))
        with self.assertRaisesRegex(ValueError, "input_scales is 2 or 3"):
            HmeNet(7, width=4, input_scales=4)

    def test_the_counting_head_counts_per_size_and_can_join_the_embedding(self):
        import onnx
        import torch

        from plom_clustering_plugin.training.hme_distil import network_shape
        from plom_clustering_plugin.training.hme_export import export_onnx
        from plom_clustering_plugin.training.hme_model import GRID, HmeNet

        torch.manual_seed(0)
        x = torch.rand(2, 1, 48, 192)
        plain = HmeNet(7, width=4).eval()
        counting = HmeNet(7, width=4, counting=True).eval()
        embedded = HmeNet(7, width=4, counting=True, count_weight=0.5).eval()
        # The head adds weights beside the symbol maps and changes nothing else.
        counting.load_state_dict(plain.state_dict(), strict=False)
        embedded.load_state_dict(counting.state_dict())
        with torch.no_grad():
            _, emb_plain = plain(x)
            _, emb_counting, counts = counting.outputs(x)
            _, emb_embedded, _ = embedded.outputs(x)
        self.assertTrue(torch.equal(emb_plain, emb_counting))
        self.assertEqual([tuple(c.shape) for c in counts], [(2, 7), (2, 7)])
        # Started near empty: well under one of each symbol per image.
        self.assertLess(float(torch.stack(counts).max()), 1.0)
        self.assertEqual(tuple(emb_embedded.shape), (2, 7 * (2 + GRID[0] * GRID[1])))
        self.assertFalse(torch.allclose(emb_embedded[:, : 7 * 22], emb_plain))
        with self.assertRaisesRegex(ValueError, "needs the counting head"):
            HmeNet(7, width=4, count_weight=0.5)
        # The exported graph computes the counts level as torch does.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.onnx"
            difference = export_onnx(embedded, path, (48, 192))
            model = onnx.load(path)
        self.assertLess(difference, 1e-4)
        # Distillation cannot rebuild the head: it says so rather than misreading.
        with self.assertRaisesRegex(ValueError, "symbol-count level"):
            network_shape(model)


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class ZoomOutTests(SimpleTestCase):
    def test_zoom_out_shrinks_about_half_of_the_images_and_is_off_by_default(self):
        import torch

        from plom_clustering_plugin.training.hme_augment import augment

        x = torch.zeros(32, 1, 96, 384)
        x[:, :, 28:68, 92:292] = 1.0

        def widths(batch):
            columns = (batch[:, 0] > 0.3).any(dim=1)
            return torch.tensor(
                [float(c.nonzero().max() - c.nonzero().min() + 1) for c in columns]
            )

        plain = augment(x, torch.Generator().manual_seed(3))
        same = augment(x, torch.Generator().manual_seed(3), zoom_out=1.0)
        self.assertTrue(torch.equal(plain, same))
        shrunk = augment(x, torch.Generator().manual_seed(3), zoom_out=0.5)
        ratio = widths(shrunk) / widths(plain)
        self.assertTrue(bool((ratio < 1.02).all()), ratio)
        self.assertTrue(bool((ratio > 0.48).all()), ratio)
        smaller = int((ratio < 0.9).sum())
        self.assertGreater(smaller, 4)
        self.assertLess(smaller, 28)

    def test_zoom_out_is_a_factor_above_zero_up_to_one(self):
        from plom_clustering_plugin.training.hme_train import parse_args

        base = ["--data", "d", "--out", "o"]
        self.assertEqual(parse_args(base).zoom_out, 1.0)
        self.assertEqual(parse_args([*base, "--zoom-out", "0.667"]).zoom_out, 0.667)
        for bad in ("0", "1.5", "x"):
            with redirect_stderr(io.StringIO()), self.assertRaises(SystemExit):
                parse_args([*base, "--zoom-out", bad])


@skipIf(NO_TORCH, "torch is not installed (pip install torch==2.13.0)")
class CountOptionTests(SimpleTestCase):
    def test_counts_must_be_whole_and_not_negative(self):
        from plom_clustering_plugin.training.hme_train import parse_args

        base = ["--data", "d", "--out", "o"]
        self.assertEqual(parse_args([*base, "--deeper", "2"]).deeper, 2)
        for option in ("--deeper", "--synth-symbols", "--lone-boost"):
            for bad in ("-1", "two"):
                with (
                    self.subTest(option=option, value=bad),
                    redirect_stderr(io.StringIO()) as err,
                    self.assertRaises(SystemExit),
                ):
                    parse_args([*base, option, bad])
                self.assertIn(option, err.getvalue())


class FoldValidationTests(SimpleTestCase):
    def test_folding_trains_on_validation_and_keeps_the_calibration_rows(self):
        from plom_clustering_plugin.training import hme_data

        latex = [f"x + {i % 40}" for i in range(200)]
        train, calib, val = hme_data.training_splits(latex, 0.2, 0.1, seed=3)
        folded = hme_data.training_splits(latex, 0.2, 0.1, seed=3, fold_val=True)
        self.assertTrue(val)
        self.assertEqual(folded[1], calib)
        self.assertEqual(folded[2], [])
        self.assertEqual(folded[0], sorted(train + val))
        # Still no calibration expression among the rows trained on.
        held = {latex[i] for i in calib}
        self.assertFalse(held & {latex[i] for i in folded[0]})

    def test_a_folded_source_needs_fold_val_even_when_its_entry_predates_the_record(
        self,
    ):
        import argparse
        from dataclasses import replace

        from plom_clustering_plugin.ml.hme import read_entry
        from plom_clustering_plugin.training import hme_data

        weights = Path(__file__).resolve().parent.parent / "weights"
        shipped = read_entry(weights / "hme-symbols-v54.entry.json")
        folded = replace(
            shipped,
            metrics={},
            training_data="all expressions but the calibration ones (the validation"
            " 20% trained on too), 10 images trained on",
        )
        asked = argparse.Namespace(seed=0, val_share=0.2, calib_share=0.1)
        hme_data.check_source_split(
            argparse.Namespace(**vars(asked), fold_val=True), folded
        )
        with self.assertRaisesRegex(ValueError, "trained with --fold-val"):
            hme_data.check_source_split(
                argparse.Namespace(**vars(asked), fold_val=False), folded
            )
        # A recorded split is compared option by option.
        recorded = replace(
            folded,
            metrics={
                "training": {
                    "split": hme_data.split_record(
                        argparse.Namespace(**vars(asked), fold_val=True)
                    )
                }
            },
        )
        other = argparse.Namespace(
            seed=0, val_share=0.2, calib_share=0.15, fold_val=True
        )
        with self.assertRaisesRegex(
            ValueError, r"--calib-share 0.1 \(asked: --calib-share 0.15\)"
        ):
            hme_data.check_source_split(other, recorded)
