"""A headless Chromium for the browser tests (Debian's ``chromium`` driven by Playwright;
no browser download is possible on the CI machines), skipped with the reason when absent."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip


@contextmanager
def chromium_page(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A Playwright page in a fresh headless Chromium of ``width`` x ``height`` pixels."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed (pip install -e '.[test]')"
    )
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; make test does it)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()
