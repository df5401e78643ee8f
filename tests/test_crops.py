# SPDX-License-Identifier: AGPL-3.0-or-later
"""Our crop path gives exactly RectangleExtractor's pixels, whatever the orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.test import TestCase
from PIL import Image
from plom_server.Base.services import Settings
from plom_server.Papers.models import FixedPage
from plom_server.Rectangles.services import RectangleExtractor

from plom_clustering_plugin.demo.exam import DEMO_PUBLIC_CODE
from plom_clustering_plugin.services.crops import CropSource

from .exam_fixtures import three_answer_exam


class CropPathTest(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.exam, _ = three_answer_exam(4, max_tilt=2.0)
        cls.rect = cls.exam.answer_rects[1]

    def image_of(self, paper):
        return (
            FixedPage.objects.filter(paper__paper_number=paper, page_number=3)
            .select_related("image__baseimage")
            .first()
            .image
        )

    def assertSameAsPlom(self, paper):
        ours = CropSource(1, 1, 3, self.rect).crop_image(self.image_of(paper))
        plom = RectangleExtractor(1, 3).get_cropped_scanned_img_or_none(
            paper, self.rect
        )
        self.assertEqual(ours.shape, plom.shape)
        np.testing.assert_array_equal(ours, plom)

    def test_the_exam_prints_a_fixed_public_code(self):
        # Plom's random code would change every QR code, so every scan, on each build.
        self.assertEqual(Settings.get_public_code(), DEMO_PUBLIC_CODE)

    def test_tilted_scans_give_identical_crops(self):
        for paper in self.exam.papers:
            with self.subTest(paper=paper):
                self.assertSameAsPlom(paper)

    def test_exif_orientation_and_plom_rotation_are_applied_the_same_way(self):
        image = self.image_of(1)
        path = Path(image.baseimage.image_file.path)
        upright = Image.open(path).convert("RGB")
        # Store the page turned on its side with an EXIF tag saying how to undo it.
        exif = Image.Exif()
        exif[0x0112] = 6
        upright.rotate(90, expand=True).save(path, format="JPEG", quality=95, exif=exif)
        self.assertSameAsPlom(1)
        image.rotation = 180
        image.save()
        self.assertSameAsPlom(1)

    def test_too_few_qr_codes_give_none(self):
        image = self.image_of(2)
        image.parsed_qr = {"SE": image.parsed_qr["SE"]}
        self.assertIsNone(CropSource(1, 1, 3, self.rect).crop_image(image))
