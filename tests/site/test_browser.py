"""The built site in a real browser: Debian's headless Chromium driven by Playwright, over HTTP on localhost.

Every page loads without a console error, holds its tables and rows, draws its charts, links only to
things that exist, and shows a framework called `<script>…</script>` as text without running it.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import pytest

from tests.site.conftest import EVIL, committed_frameworks, committed_platforms, require_tool

playwright = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is in the [site] extra")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def base_url(built: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(built)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    chromium = require_tool("chromium", "chromium-browser")  # Debian / Ubuntu names
    with playwright.sync_playwright() as p:
        # Playwright's own browser download is not used: Debian's chromium, found on PATH.
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.errors = []  # console errors and uncaught exceptions of everything this page loads
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    page.close()


def test_every_page_loads_without_console_errors(page, base_url, built):
    pages = sorted(p.relative_to(built).as_posix() for p in built.rglob("*.html"))
    assert {"index.html", "accessibility.html", "methodology.html", "downloads.html", "models/smollm2-135m.html"} <= set(pages)
    for name in pages:
        page.errors.clear()
        assert page.goto(base_url + name).status == 200, name
        page.wait_for_load_state("load")
        assert page.errors == [], f"{name}: {page.errors}"


def test_model_page_has_a_table_per_platform_with_every_row(page, base_url):
    page.goto(base_url + "models/smollm2-135m.html")
    headings = page.locator("article h2").all_inner_texts()
    platforms = sorted(["fixture-apple-m2", "fixture-nvidia-h100", "fixture-x86-4c", *committed_platforms("smollm2-135m")])
    assert [h.strip("¶ \n") for h in headings] == ["Architecture", *platforms]
    tables = page.locator(".arena-table table")
    assert tables.count() == 2 + len(platforms), "config and workloads, then one results table per platform"
    table_of = lambda platform: tables.nth(2 + platforms.index(platform))  # noqa: E731
    xeon = table_of("intel-xeon-2c")
    assert xeon.locator("tbody tr").count() == len(committed_frameworks("smollm2-135m")), "every committed framework on the Xeon"
    x86 = table_of("fixture-x86-4c")
    assert x86.locator("tr.arena-fail").count() == 1 and x86.locator("tr.arena-detail").count() == 1
    assert "cannot find tensor" in x86.locator("tr.arena-error").inner_text()
    assert x86.locator("strong").count() > 0 and x86.locator("tr.arena-fail strong").count() == 0
    verdict = xeon.locator(".arena-verdict").nth(1)
    assert "inference/logits" in verdict.get_attribute("title"), "error figures on hover"


def test_charts_render_with_marks(page, base_url):
    for name, selector, least in (("index.html", ".arena-point", 20), ("models/smollm2-135m.html", ".arena-bar", 20),
                                  ("models/smollm2-135m.html", ".arena-point", 5), ("accessibility.html", ".arena-square", 40)):
        page.goto(base_url + name)
        box = page.locator("svg.arena-chart").first.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 50, name
        assert page.locator(selector).count() >= least, (name, selector)
        first = page.locator(selector).first.bounding_box()
        assert first and first["width"] > 0 and first["height"] > 0, (name, selector)


def test_every_link_resolves(page, base_url, built):
    ids: dict[str, set[str]] = {}
    for html_file in built.rglob("*.html"):
        url = base_url + html_file.relative_to(built).as_posix()
        ids[url] = set(re.findall(r'\bid="([^"]+)"', html_file.read_text()))
    checked: set[str] = set()
    for url in ids:
        page.goto(url)
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
            target = urljoin(url, href)
            if not target.startswith(base_url) or target in checked:
                continue
            checked.add(target)
            address, fragment = urldefrag(target)
            assert page.request.get(address).status == 200, f"{url}: broken link {href}"
            if fragment and address in ids:
                assert fragment in ids[address], f"{url}: no #{fragment} in {address}"
    assert len(checked) > 50


def test_a_framework_named_script_shows_as_text(page, base_url):
    for name in ("models/smollm2-135m.html", "index.html", "accessibility.html", "downloads.html"):
        page.goto(base_url + name)
        assert page.evaluate("window.__arena_pwned") is None, f"{name}: the name ran as a script"
        assert EVIL in page.locator("article").inner_text(), name
