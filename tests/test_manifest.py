# SPDX-License-Identifier: AGPL-3.0-or-later
import copy
import json
import tempfile
from pathlib import Path

from django.test import SimpleTestCase

from plom_clustering_plugin.ml import manifest as manifest_module
from plom_clustering_plugin.ml.manifest import (
    DEFAULT_DIFFERENT_ANSWER_DISTANCE,
    ManifestError,
    UnknownModelError,
    get_entry,
    load_manifest,
    parse_manifest,
)

from .weights_helpers import model_entry, write_manifest

REPO = Path(__file__).resolve().parent.parent


class PackagedManifestTest(SimpleTestCase):
    def test_packaged_manifest_is_valid_and_is_the_top_level_file(self):
        packaged = load_manifest()
        self.assertIn(
            packaged.schema_version, manifest_module.SUPPORTED_SCHEMA_VERSIONS
        )
        self.assertEqual(packaged.path.name, "weights_manifest.json")
        self.assertEqual(
            manifest_module.PACKAGED_MANIFEST.read_bytes(),
            (REPO / "weights_manifest.json").read_bytes(),
        )


class ManifestParsingTest(SimpleTestCase):
    def setUp(self):
        self.folder = Path(self.enterContext(tempfile.TemporaryDirectory()))
        self.entries = [
            model_entry("letters", "2", b"two"),
            model_entry(
                "letters",
                "10",
                b"ten",
                same_answer_distance=0.2,
                input_spec={
                    "name": "x",
                    "shape": [None, 16, 48],
                    "dtype": "float32",
                    "normalisation": {
                        "ink": "black-on-white",
                        "range": [-1, 1],
                        "mean": 0.5,
                        "std": 0.25,
                    },
                },
            ),
            model_entry(
                "hme", "1", b"one", output={"meaning": "embedding", "labels": None}
            ),
        ]

    def load(self, entries=None, **top):
        data = {"schema_version": 1, "models": entries or self.entries, **top}
        path = self.folder / "weights_manifest.json"
        path.write_text(json.dumps(data))
        return load_manifest(path)

    def test_fields_are_parsed(self):
        parsed = self.load()
        entry = parsed.get_entry("letters", "10")
        self.assertEqual(entry.file, "letters-v10.onnx")
        self.assertEqual(entry.size, 3)
        self.assertEqual(entry.input.shape, (None, 16, 48))
        self.assertEqual(entry.input.canvas, (16, 48))
        self.assertEqual(entry.input.normalisation.ink, "black-on-white")
        self.assertEqual(entry.input.normalisation.range, (-1.0, 1.0))
        self.assertEqual(entry.input.normalisation.std, 0.25)
        self.assertEqual(entry.input.dot_reach, 0)  # not given: every speck removed
        entries = copy.deepcopy(self.entries)
        entries[2]["input"]["dot_reach"] = 20
        self.assertEqual(self.load(entries).get_entry("hme", "1").input.dot_reach, 20)
        self.assertEqual(entry.output.labels, ("A", "B", "C"))
        self.assertEqual(entry.same_answer_distance, 0.2)
        self.assertEqual(parsed.get_entry("letters", "2").same_answer_distance, 0.1)
        self.assertIsNone(parsed.get_entry("hme").output.labels)
        self.assertEqual(entry.label, "letters@10")

    def test_newest_version_is_chosen_numerically(self):
        parsed = self.load()
        self.assertEqual(parsed.get_entry("letters").version, "10")
        self.assertEqual(get_entry("letters", None, parsed).version, "10")
        self.assertEqual(
            [e.label for e in parsed.default_entries()], ["hme@1", "letters@10"]
        )

    def test_defaults_name_a_version_other_than_the_newest(self):
        parsed = self.load(defaults={"letters": "2"})
        self.assertEqual(parsed.get_entry("letters").version, "2")
        self.assertEqual(parsed.get_entry("letters", "10").version, "10")  # pinnable
        self.assertEqual(parsed.get_entry("hme").version, "1")  # no default: newest
        self.assertEqual(
            [e.label for e in parsed.default_entries()], ["hme@1", "letters@2"]
        )

    def test_defaults_must_name_a_listed_version(self):
        cases = [
            ([], "defaults must be an object"),
            ({"letters": 2}, "defaults.letters must be a version string"),
            ({"nope": "1"}, "defaults.nope names no model"),
            ({"letters": "3"}, "defaults.letters names no version '3'"),
        ]
        for defaults, message in cases:
            with self.subTest(defaults=defaults):
                with self.assertRaisesMessage(ManifestError, message):
                    self.load(defaults=defaults)

    def test_unknown_name_or_version_lists_what_exists(self):
        parsed = self.load()
        with self.assertRaisesMessage(UnknownModelError, "known models: hme, letters"):
            parsed.get_entry("nope")
        with self.assertRaisesMessage(UnknownModelError, "known versions: 2, 10"):
            parsed.get_entry("letters", "3")

    def test_errors_name_the_bad_field(self):
        cases = [
            ("sha256", "abc", "models[1].sha256 must be 64 hex characters"),
            ("size", -5, "models[1].size must be a positive whole number"),
            ("size", True, "models[1].size must be a positive whole number"),
            ("urls", [], "models[1].urls must be a non-empty list"),
            ("urls", ["ftp://x/y"], "models[1].urls[0] must be an https://"),
            ("file", "../evil-v10.onnx", "models[1].file must be a plain file name"),
            ("file", "letters.onnx", "models[1].file must carry the version '10'"),
            ("seed", "zero", "models[1].seed must be a whole number or null"),
            ("metrics", [], "models[1].metrics must be an object"),
            ("licence", "", "models[1].licence must not be empty"),
            ("same_answer_distance", 3, "models[1].same_answer_distance must be in"),
            (
                "different_answer_distance",
                "far",
                "models[1].different_answer_distance must be a number",
            ),
            (
                "different_answer_distance",
                0.01,
                "models[1].different_answer_distance must be larger than same",
            ),
            ("sha265", "x", "models[1].sha265 is not a known field"),
            ("name", "Big Name", "models[1].name must be lower-case"),
        ]
        for field, value, message in cases:
            with self.subTest(field=field, value=value):
                entries = copy.deepcopy(self.entries)
                entries[1][field] = value
                with self.assertRaisesMessage(
                    ManifestError, f"weights_manifest.json: {message}"
                ):
                    self.load(entries)

    def test_clusterer_distances_are_read_with_defaults(self):
        entries = copy.deepcopy(self.entries)
        entries[0]["same_answer_distance"] = 0.02
        entries[0]["different_answer_distance"] = 0.35
        parsed = self.load(entries)
        self.assertEqual(parsed.models[0].same_answer_distance, 0.02)
        self.assertEqual(parsed.models[0].different_answer_distance, 0.35)
        self.assertEqual(
            parsed.models[1].different_answer_distance,
            DEFAULT_DIFFERENT_ANSWER_DISTANCE,
        )

    def test_missing_field_is_named(self):
        entries = copy.deepcopy(self.entries)
        del entries[0]["licence"]
        with self.assertRaisesMessage(ManifestError, "models[0].licence is missing"):
            self.load(entries)

    def test_input_and_output_errors_name_the_field(self):
        cases = [
            (("input", "shape"), [1, 1, 8, 8], "models[1].input.shape[0] (the batch"),
            (("input", "shape"), [-1, 3, 8, 8], "models[1].input.shape[1] (channels)"),
            (("input", "shape"), [-1, 8], "models[1].input.shape must be [N, 1, H, W]"),
            (("input", "shape"), [-1, 1, -1, 8], "models[1].input.shape must give a"),
            (("input", "shape"), [-1, 1, 0, 8], "models[1].input.shape[2] must be"),
            (("input", "dtype"), "int8", "models[1].input.dtype must be one of"),
            (("input", "name"), 3, "models[1].input.name must be a string"),
            (("input", "dot_reach"), -1, "models[1].input.dot_reach must be a whole"),
            (("input", "dot_reach"), 2.5, "models[1].input.dot_reach must be a whole"),
            (("input", "dot_reach"), True, "models[1].input.dot_reach must be a whole"),
            (("input", "dot_reach"), 101, "models[1].input.dot_reach must be a whole"),
            (("output", "meaning"), "scores", "models[1].output.meaning must be one"),
            (("output", "labels"), [1, 2], "models[1].output.labels must be a list"),
        ]
        for (part, field), value, message in cases:
            with self.subTest(field=f"{part}.{field}", value=value):
                entries = copy.deepcopy(self.entries)
                entries[1][part][field] = value
                with self.assertRaisesMessage(ManifestError, message):
                    self.load(entries)

    def test_normalisation_errors_name_the_field(self):
        cases = [
            ("std", 0, "models[1].input.normalisation.std must be positive"),
            ("ink", "blue", "models[1].input.normalisation.ink must be one of"),
            ("range", [0], "models[1].input.normalisation.range must be [low, high]"),
            ("mean", "x", "models[1].input.normalisation.mean must be a number"),
        ]
        for field, value, message in cases:
            with self.subTest(field=field):
                entries = copy.deepcopy(self.entries)
                entries[1]["input"]["normalisation"][field] = value
                with self.assertRaisesMessage(ManifestError, message):
                    self.load(entries)

    def test_embedding_must_not_have_labels(self):
        entries = copy.deepcopy(self.entries)
        entries[2]["output"]["labels"] = ["a"]
        with self.assertRaisesMessage(
            ManifestError, "models[2].output.labels must be null"
        ):
            self.load(entries)

    def test_duplicates_are_refused(self):
        entries = copy.deepcopy(self.entries)
        entries.append(copy.deepcopy(entries[0]))
        with self.assertRaisesMessage(
            ManifestError, "models[3] repeats letters version 2"
        ):
            self.load(entries)
        entries[3]["name"] = "other"
        with self.assertRaisesMessage(ManifestError, "models[3].file repeats"):
            self.load(entries)

    def test_top_level_errors(self):
        with self.assertRaisesMessage(
            ManifestError, "schema_version is 2, but this plugin"
        ):
            self.load(schema_version=2)
        with self.assertRaisesMessage(ManifestError, "models must be a list"):
            parse_manifest({"schema_version": 1, "models": {}})
        with self.assertRaisesMessage(ManifestError, "must be a JSON object"):
            parse_manifest([])
        bad = self.folder / "broken.json"
        bad.write_text("{not json")
        with self.assertRaisesMessage(ManifestError, "broken.json: not valid JSON"):
            load_manifest(bad)
        with self.assertRaisesMessage(ManifestError, "weights manifest not found"):
            load_manifest(self.folder / "absent.json")

    def test_helper_manifest_round_trips(self):
        path = write_manifest(self.folder, self.entries)
        self.assertEqual(len(load_manifest(path).models), 3)
