# SPDX-License-Identifier: AGPL-3.0-or-later
"""Headless Chromium (Debian's) driven by Playwright against Django's live server.

Never runs ``playwright install``: the browser is the system one, so the tests work
offline.  They are skipped, with the reason, when Playwright or Chromium is missing.
"""

from __future__ import annotations

import os
import shutil
import unittest
from pathlib import Path

from django.contrib.staticfiles.testing import StaticLiveServerTestCase

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("PLOM_CLUSTERING_CHROMIUM", "/usr/bin/chromium")
#: Offline and in a container: no sandbox, GPU, updates or background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright; never `playwright install`)"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium is not at {CHROMIUM} (apt-get install -y chromium)"
    return None


def screenshots_dir() -> Path:
    """Where screenshots go: $PLOM_CLUSTERING_SCREENSHOTS, else artifacts/screenshots."""
    folder = Path(
        os.environ.get(
            "PLOM_CLUSTERING_SCREENSHOTS", ROOT / "artifacts" / "screenshots"
        )
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class BrowserTestCase(StaticLiveServerTestCase):
    """A live server on 127.0.0.1 and one headless Chromium for the class."""

    host = "127.0.0.1"

    @classmethod
    def setUpClass(cls):
        reason = missing_browser()
        if reason:
            raise unittest.SkipTest(reason)
        super().setUpClass()
        # Playwright's sync API runs an event loop in this thread; the test's own ORM
        # calls are still synchronous (Django's documented setting for this case).
        cls._async_unsafe = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        from playwright.sync_api import sync_playwright

        cls.playwright = sync_playwright().start()
        cls.browser = cls.playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.playwright.stop()
        if cls._async_unsafe is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = cls._async_unsafe
        super().tearDownClass()

    def new_page(self):
        """A fresh browser context (own cookies) with a desktop-sized page."""
        context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        self.addCleanup(context.close)
        page = context.new_page()
        page.set_default_timeout(30_000)
        return page

    def log_in(self, page, username: str, password: str) -> None:
        """Log in through Plom's login form."""
        page.goto(f"{self.live_server_url}/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        with page.expect_navigation():
            page.click("form button[type=submit], form input[type=submit]")

    def shot(self, page, name: str) -> Path:
        """Save a full-page screenshot and return its path."""
        path = screenshots_dir() / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
