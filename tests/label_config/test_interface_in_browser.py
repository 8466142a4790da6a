"""The annotator's path in a real browser: headless Debian Chromium driven by Playwright.

Logs in to the session's Label Studio, opens a Crowd task, labels it with the mouse and with
hotkeys, submits, and checks that what LS stored is what was clicked.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from label_config import LabelRecord, parse_annotation
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, task_for_clip

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(ls_server):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only this module needs it

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.errors = []
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.goto(ls_server.url + "/user/login/")
            page.fill("#email", ls_server.credentials.username)
            page.fill("#password", ls_server.credentials.password)
            page.click("button.login-button")
            page.wait_for_load_state("networkidle")
            yield page
        finally:
            browser.close()


def section(page, title: str, control: str):
    """The control rendered right after the config's <Header> starting with `title`."""
    return page.locator(f'h4:text-matches("^{title}") + .lsf-{control}')


def pick_words(page, title: str, words: list[str]) -> None:
    selector = section(page, title, "taxonomy").locator(".ant-select-selector")
    box = selector.bounding_box()
    # Near the right edge: the centre may land on a tag already picked (docs/platform-notes.md).
    page.mouse.click(box["x"] + box["width"] - 8, box["y"] + box["height"] / 2)
    # The other taxonomy's closed dropdown stays in the DOM: work in the visible one.
    search = page.locator('input[data-testid="taxonomy-search"]:visible')
    for word in words:
        search.fill(word[:-1])  # a prefix, as a person types
        leaf = page.locator(".ant-select-tree-treenode:visible:has(.ant-select-tree-switcher-noop)").filter(
            has_text=re.compile(f"^{re.escape(word)}$"))
        leaf.locator(".ant-select-tree-checkbox").click()
    page.keyboard.press("Escape")
    expect(search).to_have_count(0)  # closed, so the next search box found is the next taxonomy's


@pytest.fixture
def screenshot_on_failure(page, artifacts, request):
    yield
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else True:
        page.screenshot(path=str(artifacts / f"{request.node.name}-failed.png"), full_page=True)


def test_annotator_labels_a_crowd_clip(page, ls, ls_server, pools, artifacts, screenshot_on_failure):
    task = task_for_clip(ls, pools["crowd"].id, "rushed-fast-high-loud.wav")
    page.goto(f"{ls_server.url}/projects/{pools['crowd'].id}/data?tab=0&task={task.id}")
    submit = page.locator('[data-testid="bottombar-submit-button"]')
    submit.wait_for(timeout=60_000)

    page.locator("audio").wait_for(state="attached", timeout=30_000)
    # The player shows the clip's duration once the audio was fetched from LS and decoded.
    end = page.locator('[data-testid="timebox-end-time"] input')
    page.wait_for_function("e => e.value && e.value !== '00:00:00:000'", arg=end.element_handle(), timeout=30_000)
    for title, control in (("Pace", "choices"), ("Pitch", "choices"), ("Volume", "choices"),
                           ("Emotions you hear", "taxonomy"), ("Voice characteristics", "taxonomy")):
        assert section(page, title, control).count() == 1, title
    assert page.locator('[data-testid="textarea-input"]').count() == 1

    section(page, "Pace", "choices").locator('label:has(input[name="fast"])').click()  # mouse
    page.keyboard.press("e")  # hotkey: pitch high
    page.keyboard.press("d")  # hotkey: volume loud
    pick_words(page, "Emotions you hear", ["excited", "anxious"])
    pick_words(page, "Voice characteristics", ["shrill"])
    page.locator('[data-testid="textarea-input"]').fill("breathless")
    page.locator('[data-testid="textarea-add-button"]').click()
    page.screenshot(path=str(artifacts / "annotator-labeling.png"), full_page=True)

    submit.click()
    deadline = time.monotonic() + 30
    while not (stored := ls.annotations.list(id=task.id)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(stored) == 1
    rec = parse_annotation(stored[0].dict())
    assert (rec.pace, rec.pitch, rec.volume, rec.emotion, rec.voice, rec.other) == (
        "fast", "high", "loud", ("excited", "anxious"), ("shrill",), ("breathless",))
    assert isinstance(rec, LabelRecord) and rec.lead_time and rec.lead_time > 0
    assert page.errors == []
