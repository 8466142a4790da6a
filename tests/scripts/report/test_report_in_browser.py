"""The report page in a real browser: `make_report` on a small live-like dataset (tests/scripts/report/live_like.py),
report.html opened from disk in headless Debian Chromium driven by Playwright: no page or console error, every
plot decoded, the key tables there with their figures, the per-clip links pointing into Label Studio.
Saves test-artifacts/report.png."""

from __future__ import annotations

import pytest

from scripts.report import make_report
from scripts.report.figures import Rate
from tests.helpers import CHROMIUM, CHROMIUM_ARGS
from tests.scripts.report import live_like

pytestmark = pytest.mark.browser

TABLES = ("about", "warnings", "summary", "ratios", "consensus-agreement", "overlap", "one-pool-words", "per-clip",
          "workers-expert", "workers-crowd")


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    rates = {"expert": Rate(per_hour=30.0, per_hour_placeholder=True), "crowd": Rate(per_hour=10.0, per_hour_placeholder=True)}
    make_report(live_like.dataset(), out, rates=rates, bootstrap=200, embeddings=False)
    return out / "report.html"


def test_report_page_in_chromium(report_html, artifacts):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only the browser tests need it

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url[:80]}"))
            page.goto(report_html.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(artifacts / "report.png"), full_page=True)

            for table in TABLES:
                assert page.locator(f"#{table}").count() == 1, table
            images = page.locator("figure img")
            assert images.count() >= 10
            broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)")
            assert broken == []
            assert page.locator("#ratios tr", has_text="Distinct words").locator("td").all_inner_texts() == [
                "Distinct words", "1.11", "0.90"]
            assert "100.0% [67.6, 100.0]" in page.locator("#summary tr", has_text="pace: all agree").inner_text()
            assert "Placeholder hourly rates" in page.locator("#warnings").inner_text()
            link = page.locator("#per-clip a", has_text="task 206")
            assert link.get_attribute("href") == f"{live_like.LS_URL}/projects/2/data?task=206"
            assert page.locator("#workers-crowd tr", has_text="admin@example.com").locator("td").first.inner_text() == "–"
            assert page.locator("#notes").inner_text().startswith("Labels still under review are counted")
            assert errors == []
        finally:
            browser.close()
