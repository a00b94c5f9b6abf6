"""A real browser for the tests: Debian's Chromium driven by the ``playwright`` package, and one reusable layout
check for any page polypbench serves or writes (the leaderboard, an ``evaluate --report`` file, a ``browse``
site; ``http://`` or ``file://`` URLs alike).

:func:`check_layout` loads a URL at each viewport of :data:`VIEWPORTS` (1280x800 and 390x844), asserts that the
page never scrolls sideways (``document.documentElement.scrollWidth <= window.innerWidth``: a wide table must
scroll inside its own box) and that every ``<img>`` has loaded (``complete && naturalWidth > 0``), and saves a
full-page screenshot per viewport as a test artifact: under ``$POLYPBENCH_ARTIFACTS`` when it is set, else in the
folder the caller gives (pytest's tmp dir, via the ``artifacts`` fixture of tests/conftest.py).

Needs the ``playwright`` Python package (the ``test`` extra; it ships its own driver, no browser download: never
``playwright install``) and the system Chromium at /usr/bin/chromium (``make install`` installs it). Locally a test
skips when either is missing; under ``CI=true`` it fails instead, so a browser check never silently vanishes there.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("POLYPBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
TIMEOUT_MS = 15_000
ARTIFACTS_ENV = "POLYPBENCH_ARTIFACTS"
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
"""The widths every page must fit: a laptop and a phone (issue 21)."""

_LAYOUT = """() => ({
  scrollWidth: document.documentElement.scrollWidth,
  innerWidth: window.innerWidth,
  images: document.images.length,
  broken: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
                              .map(i => (i.alt || '') + ' <' + (i.currentSrc || i.src).slice(0, 60) + '>'),
  wide: [...document.querySelectorAll('body *')]
          .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
          .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')),
})"""
"""What :func:`check_layout` measures in the page; ``wide`` names a few elements that stick out (for the message)."""


OPEN_DETAILS = "() => document.querySelectorAll('details').forEach(d => { d.open = true; })"
"""A ``prepare`` script for :func:`check_layout`: unfold every ``<details>`` (a folded table must fit too)."""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run in CI; `make install` provides it)")
    pytest.skip(f"{reason}; run `make install` (installs playwright and Debian's chromium) to enable")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a playwright ``Browser``); skips the test (fails under ``CI=true``) without one."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    exe = CHROMIUM if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if exe is None:
        _unavailable(f"no Chromium at {CHROMIUM} or on PATH")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        try:
            yield browser
        finally:
            browser.close()


def artifacts_dir(fallback: Path) -> Path:
    """Where screenshots go: ``$POLYPBENCH_ARTIFACTS`` when set (CI uploads it), else ``fallback``."""
    folder = Path(os.environ.get(ARTIFACTS_ENV) or fallback)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class Layout:
    """One page at one viewport, as :func:`check_layout` measured it."""

    url: str
    viewport: tuple[int, int]
    scroll_width: int
    images: int
    screenshot: Path


def check_layout(browser: Any, url: str, name: str, out: Path,
                 viewports: dict[str, tuple[int, int]] = VIEWPORTS, prepare: str | None = None) -> list[Layout]:
    """Load ``url`` (http(s) or file://) in ``browser`` at each viewport; assert it has no horizontal overflow and
    every ``<img>`` loaded; save ``out/<name>-<width>x<height>.png`` (full page). ``prepare``: JavaScript run in
    the page before it is measured (e.g. :data:`OPEN_DETAILS`, so folded content is measured too). Returns what was
    measured."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
    found = []
    for width, height in viewports.values():
        page = browser.new_page(viewport={"width": width, "height": height})
        try:
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url, wait_until="load")
            if prepare is not None:
                page.evaluate(prepare)
            m = page.evaluate(_LAYOUT)
            shot = out / f"{safe}-{width}x{height}.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            page.close()
        assert m["scrollWidth"] <= m["innerWidth"], (
            f"{url} at {width}x{height}: the page scrolls sideways (scrollWidth {m['scrollWidth']} > innerWidth "
            f"{m['innerWidth']}); sticking out: {', '.join(m['wide'])}; screenshot {shot}")
        assert not m["broken"], f"{url} at {width}x{height}: images not loaded: {m['broken']}; screenshot {shot}"
        found.append(Layout(url, (width, height), m["scrollWidth"], m["images"], shot))
    return found
