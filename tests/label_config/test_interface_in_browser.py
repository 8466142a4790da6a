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
from tests.helpers import task_for_clip

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(ls_page):
    return ls_page


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
    page.keyboard.press("7")  # hotkey: pitch high
    page.keyboard.press("Shift+3")  # hotkey: volume loud
    chosen = {a: section(page, a, "choices").locator("input:checked").get_attribute("name")
              for a in ("Pace", "Pitch", "Volume")}
    assert chosen == {"Pace": "fast", "Pitch": "high", "Volume": "loud"}
    # typing words with the focus outside the search box (a click on a heading) must change nothing
    page.locator('h4:text-matches("^Emotions you hear")').click()
    page.keyboard.type("sad angry anxious-ish light-hearted qwerty asdf")
    assert {a: section(page, a, "choices").locator("input:checked").get_attribute("name")
            for a in ("Pace", "Pitch", "Volume")} == chosen
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
