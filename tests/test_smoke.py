from django.test import SimpleTestCase


class ImportTest(SimpleTestCase):
    def test_app_loads(self):
        from django.apps import apps

        self.assertTrue(apps.is_installed("plom_clustering_plugin"))
