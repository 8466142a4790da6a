"""The judge loop against the session's real Label Studio, with the real service (gunicorn), the real
worker (Huey consumer on SQLite) and the real store, each its own process started and stopped here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import requests

from label_config import LabelRecord, labeling_config, to_result
from scripts.labelstudio.projects import ensure_user
from scripts.labelstudio.wiring import setup
from scripts.local.process import free_port
from tests.helpers import CLESC, Proc, healthy, task_for_clip, wait_for
from webhooks.app import SECRET_HEADER
from webhooks.settings import Settings
from webhooks.store import Store
from webhooks.worker import version_of

PAYLOAD_SECRETS = ("tok-SECRET-7f3a9", "pw-SECRET-c41d2")


@pytest.fixture(scope="module")
def service(ls, ls_server, pools, tmp_path_factory):
    home = tmp_path_factory.mktemp("service-home")
    port = free_port()
    env = {**os.environ, "CLESC_HOME": str(home), "CLESC_LS_URL": ls_server.url,
           "CLESC_LS_TOKEN": ls_server.credentials.token, "CLESC_WEBHOOK_SECRET": "hook-secret-0b9e1d",
           "CLESC_SERVICE_PORT": str(port), "CLESC_WORKERS": "2"}
    settings = Settings.from_env(env)
    setup(settings, ls, echo=lambda _: None)
    svc = type("Service", (), {})()
    svc.env, svc.settings, svc.url, svc.home = env, settings, settings.service_url, home
    svc.store = Store(settings.database_url)
    svc.serve = Proc(["serve"], env, home / "serve.log").start()
    svc.worker = Proc(["worker"], env, home / "worker.log").start()
    wait_for(lambda: healthy(svc.url), 60, what="the webhook service")
    try:
        yield svc
    finally:
        svc.worker.stop()
        svc.serve.stop()
        for project in pools.values():
            for hook in ls.webhooks.list(project=project.id):
                ls.webhooks.delete(hook.id)


def _user(ls, n: int) -> int:
    return ensure_user(ls, f"annotator{n}@example.com")


AGREEING = LabelRecord("fast", "high", "loud", emotion=("excited", "happy"))
AGREEING_2 = LabelRecord("fast", "high", "loud", emotion=("joyful", "enthusiastic"), voice=("shrill",))
CONTRADICTORY = LabelRecord("slow", "low", "quiet", emotion=("calm", "agitated"))


def annotate_three(ls, task_id: int, records=(AGREEING, AGREEING_2, CONTRADICTORY)) -> list[int]:
    return [ls.annotations.create(id=task_id, result=to_result(r), completed_by=_user(ls, n + 1)).id
            for n, r in enumerate(records)]


def clesc_meta(ls, task_id: int) -> dict | None:
    return (ls.tasks.get(task_id).meta or {}).get("clesc")


def our_predictions(ls, task_id: int) -> list:
    return [p for p in ls.predictions.list(task=task_id) if (p.model_version or "").startswith("clesc-judge")]


def review_tasks_for(ls, review_project: int, annotation_id: int) -> list:
    return [t for t in ls.tasks.list(project=review_project, page_size=500) if t.data.get("annotation_id") == annotation_id]


def decide(ls, review_task_id: int, decision: str) -> None:
    ls.annotations.create(id=review_task_id, result=[
        {"from_name": "decision", "to_name": "audio", "type": "choices", "value": {"choices": [decision]}}])


def test_three_annotators_to_verdict_review_and_upheld_rejection(ls, pools, service):
    crowd, review = pools["crowd"].id, pools["review"].id
    task = task_for_clip(ls, crowd, "plain-normal-medium.wav")
    ids = annotate_three(ls, task.id)
    meta = wait_for(lambda: clesc_meta(ls, task.id), what="the verdict in task meta")
    assert meta["status"] == "needs_review" and meta["rejected"] == [ids[2]]
    assert {r["code"] for r in meta["reasons"][str(ids[2])]} >= {"contradiction"}
    [prediction] = our_predictions(ls, task.id)
    choices = {r["from_name"]: r["value"].get("choices") for r in prediction.result}
    assert choices["pace"] == ["fast"] and choices["pitch"] == ["high"] and choices["volume"] == ["loud"]
    [rt] = wait_for(lambda: review_tasks_for(ls, review, ids[2]), what="the review task")
    assert "calm vs agitated" in rt.data["reasons"] and rt.data["audio"] == task.data["audio"]
    assert rt.data["pool_task"] == task.id

    decide(ls, rt.id, "uphold")
    rejected = wait_for(lambda: (a := ls.annotations.get(ids[2])).last_action == "rejected" and a, what="uphold applied")
    assert rejected.was_cancelled is True  # CLESC_CANCEL_ON_UPHOLD default: the slot re-opens
    wait_for(lambda: (clesc_meta(ls, task.id) or {}).get("status") == "incomplete", what="re-judged as incomplete")
    assert our_predictions(ls, task.id) == []
    assert {a.id for a in ls.annotations.list(id=task.id)} == set(ids[:2])


def test_overturned_rejection_stays_and_consensus_is_recomputed(ls, pools, service):
    expert, review = pools["expert"].id, pools["review"].id
    task = task_for_clip(ls, expert, "variable-pitch.wav")
    ids = annotate_three(ls, task.id)
    [rt] = wait_for(lambda: review_tasks_for(ls, review, ids[2]), what="the review task")
    decide(ls, rt.id, "overturn")
    meta = wait_for(lambda: (m := clesc_meta(ls, task.id)) and m["status"] == "accepted" and m,
                    what="the overturned verdict")
    assert meta["rejected"] == []
    annotation = ls.annotations.get(ids[2])
    assert annotation.was_cancelled is False and annotation.last_action != "rejected"
    assert len(our_predictions(ls, task.id)) == 1


def _webhook_body(ls, annotation_id: int, project_id: int, **changes) -> dict:
    ann = ls.annotations.get(annotation_id).dict()
    ann.update(changes)
    return {"action": "ANNOTATION_UPDATED", "annotation": json.loads(json.dumps(ann, default=str)),
            "project": {"id": project_id, "token": PAYLOAD_SECRETS[0], "task_data_password": PAYLOAD_SECRETS[1],
                        "title": "Crowd"},
            "task": {"id": ann["task"], "data": {}}}


def _post(service, body, secret: str | None = "default", raw: bytes | None = None, headers=None):
    h = {"Content-Type": "application/json", **(headers or {})}
    if secret is not None:
        h[SECRET_HEADER] = service.settings.webhook_secret if secret == "default" else secret
    return requests.post(service.url + "/webhook", data=raw if raw is not None else json.dumps(body), headers=h, timeout=5)


def test_duplicate_and_out_of_order_deliveries_give_one_current_verdict(ls, pools, service):
    crowd = pools["crowd"].id
    task = task_for_clip(ls, crowd, "female-slow-high-quiet.wav")
    ids = annotate_three(ls, task.id, (AGREEING, AGREEING_2, AGREEING))
    wait_for(lambda: clesc_meta(ls, task.id), what="the first verdict")
    newer = _webhook_body(ls, ids[0], crowd)
    older = _webhook_body(ls, ids[0], crowd, updated_at="2020-01-01T00:00:00Z", result=to_result(CONTRADICTORY))
    first = _post(service, newer)
    again = _post(service, newer)
    late = _post(service, older)
    assert (first.status_code, again.status_code, late.status_code) == (202, 200, 202)
    assert again.json()["status"] == "duplicate"
    wait_for(lambda: not service.store.pending_event_ids(crowd, task.id), what="all events processed")
    verdict = service.store.verdict(crowd, task.id)
    current = {str(a.id): version_of(a.dict()) for a in ls.annotations.list(id=task.id)}
    assert verdict["versions"] == current  # judged on what LS holds now, not on the stale delivery
    assert verdict["status"] == "accepted" and clesc_meta(ls, task.id)["status"] == "accepted"
    assert len(our_predictions(ls, task.id)) == 1


@pytest.mark.parametrize("secret", [None, "", "wrong-secret"])
def test_missing_or_wrong_secret_is_401_and_stores_nothing(ls, pools, service, secret):
    before = len(service.store.events())
    body = {"action": "ANNOTATION_CREATED", "annotation": {"id": 999999, "task": 1, "result": []},
            "project": {"id": pools["crowd"].id}}
    r = _post(service, body, secret=secret)
    assert r.status_code == 401
    assert len(service.store.events()) == before


@pytest.mark.parametrize("raw, status", [
    (b"{not json", 400),
    (b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "ta', 400),  # truncated
    (b"\xff\xfe\x00garbage", 400),
    (b'["a", "list"]', 400),
    (b'{"action": "ANNOTATION_CREATED", "annotation": {"id": "one", "task": 1}, "project": {"id": 1}}', 400),
    (b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": 1, "result": "x"}, "project": {"id": 1}}', 400),
    (b"x" * 2_000_000, 413),
])
def test_malformed_bodies_are_refused_and_store_nothing(service, raw, status):
    before = len(service.store.events())
    r = _post(service, None, raw=raw)
    assert r.status_code == status, r.text
    assert "detail" in r.json()
    assert len(service.store.events()) == before


def test_outage_then_reconcile_judges_everything(ls, pools, service):
    crowd = pools["crowd"].id
    service.serve.stop()
    try:
        tasks = [task_for_clip(ls, crowd, c) for c in ("variable-volume.wav", "variable-pace.wav")]
        for t in tasks:
            annotate_three(ls, t.id)
        time.sleep(1)
        assert all(clesc_meta(ls, t.id) is None for t in tasks)  # LS lost those webhooks for good
        r = subprocess.run([CLESC, "reconcile"], env=service.env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        for t in tasks:
            assert clesc_meta(ls, t.id)["status"] == "needs_review"
            assert len(our_predictions(ls, t.id)) == 1
        again = subprocess.run([CLESC, "reconcile"], env=service.env, capture_output=True, text=True, timeout=300)
        assert "0 processed" in again.stdout  # nothing left unjudged, nothing judged twice
    finally:
        service.serve.start()
        wait_for(lambda: healthy(service.url), 60, what="the service to restart")


def test_worker_killed_mid_job_judges_the_task_once(ls, pools, service):
    expert, review = pools["expert"].id, pools["review"].id
    task = task_for_clip(ls, expert, "rushed-fast-high-loud.wav")
    service.worker.stop(signal.SIGKILL)
    ids = annotate_three(ls, task.id)  # events stored and queued while no worker runs
    log = service.home / "worker.log"
    offset = log.stat().st_size
    service.worker.start()
    wait_for(lambda: f"judging project {expert} task {task.id}" in log.read_text()[offset:], 60, 0.05,
             what="the worker to start the job")
    service.worker.stop(signal.SIGKILL)  # mid-job: between reading LS and writing back, or during it
    service.worker.start()
    wait_for(lambda: not service.store.pending_event_ids(expert, task.id) and service.store.verdict(expert, task.id),
             90, what="the job to finish after the restart")
    wait_for(lambda: (clesc_meta(ls, task.id) or {}).get("status") == "needs_review", what="meta")
    assert len(our_predictions(ls, task.id)) == 1
    assert len(review_tasks_for(ls, review, ids[2])) == 1


def test_no_secret_reaches_store_logs_or_exports(ls, service, tmp_path):
    secrets = [*PAYLOAD_SECRETS, service.settings.webhook_secret, service.settings.ls_token]
    assert service.store.events(), "the other tests stored events"
    dump = service.store.dump_text()
    logs = "".join((service.home / f).read_text() for f in ("serve.log", "worker.log"))
    export = tmp_path / "export.json"
    tasks = [t.dict() for p in ls.projects.list() for t in ls.tasks.list(project=p.id, fields="all")]
    export.write_text(json.dumps(tasks, default=str))
    out = tmp_path / "verdicts.json"
    subprocess.run([CLESC, "judge", "--export", str(export), "--out", str(out)], env=service.env, check=True,
                   capture_output=True, timeout=120)
    for secret in secrets:
        assert secret not in dump
        assert secret not in logs
        assert secret not in out.read_text()


def test_llm_failure_leaves_events_pending_and_stores_nothing(ls, clips_dir, tmp_path):
    """CLESC_JUDGE=llm with CLESC_LLM_FALLBACK=pending and no LLM server: the job fails, nothing is lost."""
    from label_config import labeling_config
    from scripts.labelstudio.projects import ensure_project, import_folder
    from webhooks.judge.llm import LLMUnavailable
    from webhooks.worker import JudgeLoop

    project = ensure_project(ls, "LLM pending test", label_config=labeling_config(), overlap=3,
                             description="test").id
    try:
        import_folder(ls, project, clips_dir)
        task = task_for_clip(ls, project, "plain-normal-medium.wav")
        annotate_three(ls, task.id)
        settings = Settings.from_env({"CLESC_HOME": str(tmp_path), "CLESC_JUDGE": "llm",
                                      "CLESC_LLM_URL": f"http://127.0.0.1:{free_port()}/v1",
                                      "CLESC_LLM_FALLBACK": "pending", "CLESC_LLM_TIMEOUT_S": "2"})
        store = Store(settings.database_url)
        store.set_projects([(project, "crowd", "LLM pending test")])
        store.add_event(delivery_key="k1", source="webhook", action="ANNOTATION_CREATED", project_id=project,
                        task_id=task.id, annotation={"id": 1})
        loop = JudgeLoop(settings, store, ls)
        with pytest.raises(LLMUnavailable):
            loop.judge_task(project, task.id)
        assert store.pending_event_ids(project, task.id)  # the worker retries it; the sweep re-enqueues it
        assert store.verdict(project, task.id) is None
        assert clesc_meta(ls, task.id) is None and our_predictions(ls, task.id) == []
    finally:
        ls.projects.delete(project)


# --- annotator reliability on the real loop -------------------------------------------------------------

SPAMMER_TASKS = 20


@pytest.fixture(scope="module")
def reliability_project(ls, pools, service, clips_dir):
    """A pool project of its own (16 tasks on the sample clips), watched by the running service."""
    from scripts.labelstudio.projects import ensure_project, ensure_webhook

    project = ensure_project(ls, "Reliability test", label_config=labeling_config(), overlap=3,
                             description="reliability across tasks").id
    clips = sorted(p.name for p in clips_dir.glob("*.wav"))
    ls.projects.import_tasks(project, request=[{"data": {"audio": f"/data/local-files/?d=clips/{clips[i % len(clips)]}",
                                                         "n": i}} for i in range(SPAMMER_TASKS)])
    ensure_webhook(ls, project, service.url + "/webhook", {SECRET_HEADER: service.settings.webhook_secret})
    roles = service.store.project_roles()
    service.store.set_projects([(pid, role, role) for pid, role in roles.items()] + [(project, "crowd", "Reliability")])
    try:
        yield project
    finally:
        service.store.set_projects([(pid, role, role) for pid, role in roles.items()])
        ls.projects.delete(project)


def _random_record(rng) -> LabelRecord:
    from label_config import ATTRIBUTES, load_taxonomy

    words = [w.word for w in load_taxonomy().words_of("emotion")]
    return LabelRecord(*(rng.choice(spec.values) for spec in ATTRIBUTES.values()), emotion=(rng.choice(words),))


def test_a_spammer_is_caught_across_tasks_and_ops_decisions_move_their_reliability(ls, pools, service,
                                                                                   reliability_project):
    import random

    rng = random.Random(5)
    honest = [_user(ls, 31), _user(ls, 32)]
    spammer = _user(ls, 33)
    tasks = sorted(t.id for t in ls.tasks.list(project=reliability_project, page_size=100))
    spam_ids = {}
    for i, task_id in enumerate(tasks):
        truth = LabelRecord(rng.choice(("slow", "normal", "fast")), rng.choice(("low", "medium", "high")),
                            rng.choice(("quiet", "medium", "loud")), emotion=rng.choice((("happy",), ("sad",), ("angry",))))
        for user in honest:
            ls.annotations.create(id=task_id, result=to_result(truth), completed_by=user)
        record = _random_record(rng)
        if sum(getattr(record, a) == getattr(truth, a) for a in ("pace", "pitch", "volume")) == 3:
            record = LabelRecord("variable", "variable", "variable", emotion=record.emotion)
        spam_ids[task_id] = ls.annotations.create(id=task_id, result=to_result(record), completed_by=spammer).id
    wait_for(lambda: all((clesc_meta(ls, t) or {}).get("status") not in (None, "incomplete") for t in tasks)
             and not any(service.store.pending_event_ids(reliability_project, t) for t in tasks),
             timeout=240, what="every task judged")
    wait_for(lambda: service.store.skills(reliability_project, [spammer])[spammer].flagged, timeout=120,
             what="the spammer flagged")
    skills = service.store.skills(reliability_project, [spammer, *honest])
    assert all(not skills[u].flagged and skills[u].reliability > 0.9 for u in honest)
    assert skills[spammer].reliability < 0.4
    # the spammer's annotations, the early ones too (judged again once the flag was raised), are rejected as such
    def unreliable(t):
        meta = clesc_meta(ls, t) or {}
        codes = [r["code"] for r in meta.get("reasons", {}).get(str(spam_ids[t]), [])]
        return spam_ids[t] in meta.get("rejected", []) and "unreliable_annotator" in codes

    wait_for(lambda: all(unreliable(t) for t in tasks), timeout=180, what="every spam annotation rejected as unreliable")
    meta = clesc_meta(ls, tasks[0])
    assert meta["confidence"][str(spam_ids[tasks[0]])] > 0.9
    # the rejection waits for ops with its confidence and the annotator's reliability
    [rt] = wait_for(lambda: review_tasks_for(ls, pools["review"].id, spam_ids[tasks[0]]), what="the review task")
    assert rt.data["confidence"] > 0.9 and "honest" in rt.data["reliability"]
    # an ops decision moves the annotator's reliability: an overturn counts as honest work
    before = service.store.skills(reliability_project, [spammer])[spammer]
    decide(ls, rt.id, "overturn")
    wait_for(lambda: service.store.skills(reliability_project, [spammer])[spammer].evidence.random
             < before.evidence.random - 0.01, what="the overturn counted")

    # restart: the skills are in the store, the next judgement uses them at once
    service.worker.stop()
    kept = service.store.skills(reliability_project, [spammer, *honest])
    service.worker = Proc(["worker"], service.env, service.home / "worker.log").start()
    assert service.store.skills(reliability_project, [spammer, *honest]) == kept
    extra = ls.projects.import_tasks(reliability_project, request=[{"data": {"audio": "/data/local-files/?d=clips/"
                                                                             "plain-normal-medium.wav"}}],
                                     return_task_ids=True).task_ids[0]
    agreeing = LabelRecord("normal", "medium", "medium", emotion=("calm",))
    for user in (*honest, spammer):  # the spammer happens to agree: still rejected as unreliable
        ls.annotations.create(id=extra, result=to_result(agreeing), completed_by=user)
    meta = wait_for(lambda: (m := clesc_meta(ls, extra)) and m["status"] != "incomplete" and m, timeout=120,
                    what="the new task judged")
    spam_annotation = next(a.id for a in ls.annotations.list(id=extra) if a.completed_by == spammer)
    assert meta["rejected"] == [spam_annotation]
    assert [r["code"] for r in meta["reasons"][str(spam_annotation)]] == ["unreliable_annotator"]
