"""The ops path in a real browser: a proposed rejection decided in the Review project's UI (headless Chromium,
Playwright), with the real service and worker; the pool task and a report reflect the decision."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from label_config import LabelRecord, to_result
from scripts.labelstudio.projects import ensure_user
from tests.helpers import wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(ls_page):
    return ls_page


def test_ops_uphold_a_rejection_in_the_review_ui(ls, ls_server, pools, service, watched_project, page, artifacts,
                                                 screenshot_on_failure, tmp_path):
    project = watched_project("Ops in the browser", 1)
    [task] = list(ls.tasks.list(project=project))
    users = [ensure_user(ls, f"annotator{n}@example.com") for n in (41, 42, 43)]
    records = (LabelRecord("fast", "high", "loud", emotion=("excited",)),
               LabelRecord("fast", "high", "loud", emotion=("happy",)),
               LabelRecord("slow", "low", "quiet", emotion=("calm", "agitated")))
    ids = [ls.annotations.create(id=task.id, result=to_result(r), completed_by=u).id for r, u in zip(records, users)]
    review = pools["review"].id
    [rt] = wait_for(lambda: [t for t in ls.tasks.list(project=review, page_size=500)
                             if t.data.get("annotation_id") == ids[2]], what="the review task")

    page.goto(f"{ls_server.url}/projects/{review}/data?tab=0&task={rt.id}")
    submit = page.locator('[data-testid="bottombar-submit-button"]')
    submit.wait_for(timeout=60_000)
    expect(page.get_by_role("columnheader", name="annotator43@example.com (under review)")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("link", name="open the pool task")).to_be_visible()
    assert page.locator("text=Skip").count() == 0  # a proposed rejection needs a decision
    page.get_by_text("Uphold rejection: the labels are wrong").click()
    page.locator('[data-testid="textarea-input"]').fill("calm and agitated at once")
    page.locator('[data-testid="textarea-add-button"]').click()
    page.screenshot(path=str(artifacts / "ops-review.png"), full_page=True)
    submit.click()

    meta = wait_for(lambda: (m := (ls.tasks.get(task.id).meta or {}).get("clesc")) and m.get("decisions") and m,
                    timeout=60, what="the decision in the pool task")
    [decision] = meta["decisions"]
    assert decision["decision"] == "uphold" and decision["comment"] == "calm and agitated at once"
    assert decision["decided_by"] == ls_server.credentials.username
    assert ls.annotations.get(ids[2]).was_cancelled is True
    # a report read from Label Studio counts the upheld rejection, though LS no longer lists the annotation
    from scripts.pools.sources import from_label_studio
    from scripts.report import make_report

    figures, _ = make_report(from_label_studio(ls, {"expert": pools["expert"].id, "crowd": project}),
                             tmp_path / "report", embeddings=False, bootstrap=0)
    assert figures["crowd"]["judge"]["decisions"]["upheld"] == 1
    assert page.errors == []
