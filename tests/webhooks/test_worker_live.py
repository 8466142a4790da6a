"""The judge loop against the session's real Label Studio, with the real service (waitress), the real
workers (Huey consumers) and the real store, each its own process started and stopped here.

The whole suite runs twice, with the same assertions: on the embedded default (SQLite store, Huey on
SQLite, one worker) and scaled out (the store on a PostgreSQL of its own, Huey on Redis, two worker
processes: two "machines"), each mode with projects of its own. The scaled-out run adds the faults:
Redis and PostgreSQL restarted mid-run, a worker SIGKILLed."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import requests

from label_config import LabelRecord, labeling_config, to_result
from scripts.labelstudio.projects import ensure_user
from scripts.local.process import free_port
from tests.helpers import CLESC, Proc, healthy, running_service, task_for_clip, wait_for
from webhooks.app import SECRET_HEADER
from webhooks.settings import Settings
from webhooks.store import Store
from webhooks.worker import version_of

PAYLOAD_SECRETS = ("tok-SECRET-7f3a9", "pw-SECRET-c41d2")


MODES = ["sqlite", "postgres-redis"]
MAX_ATTEMPTS = 3


@pytest.fixture(scope="module", params=MODES)
def mode(request):
    return request.param


@pytest.fixture(scope="module")
def store_db(mode, tmp_path_factory):
    """The scaled-out store's own PostgreSQL (a second "machine"; LS's database is the session's)."""
    if mode == "sqlite":
        yield None
        return
    from scripts.local.databases import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def service(request, mode, store_db, ls, ls_server, clips_dir, tmp_path_factory):
    env = {"CLESC_EVENT_MAX_ATTEMPTS": str(MAX_ATTEMPTS), "CLESC_EVENT_RETRY_S": "0.5", "CLESC_SWEEP_AFTER_S": "30",
           "CLESC_JOB_LEASE_S": "6"}
    workers, redis = 1, None
    if mode == "postgres-redis":
        redis = request.getfixturevalue("redis_server")
        env.update(CLESC_DATABASE_URL=store_db.create_database("clesc"), CLESC_REDIS_URL=redis.url(1))
        workers = 2
    for svc in running_service(ls, ls_server, tmp_path_factory.mktemp(f"service-{mode}"), own_pools=mode,
                               clips_dir=clips_dir, workers=workers, **env):
        svc.mode, svc.store_db, svc.redis = mode, store_db, redis
        yield svc


@pytest.fixture(scope="module")
def pools(service):
    """This mode's Expert, Crowd and Review projects (the Review project is shared by both modes)."""
    return service.pools


def worker_logs(service) -> str:
    return "".join((service.home / f"worker-{n}.log").read_text() for n in range(len(service.workers)))


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


def one_each(ls, review: int, task_id: int, rejected: list[int]) -> None:
    """One judge prediction on the task and one review task per rejected annotation. A job's lease on its task
    keeps a second job (another worker's) from judging it at once; the count is awaited (bounded), as the
    write-back may still be under way."""
    wait_for(lambda: len(our_predictions(ls, task_id)) == 1, 60, what=f"one prediction on task {task_id}")
    for aid in rejected:
        wait_for(lambda aid=aid: len(review_tasks_for(ls, review, aid)) == 1, 60,
                 what=f"one review task for annotation {aid}")


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


def test_an_annotator_who_submits_twice_has_one_vote_and_ops_see_the_older(ls, pools, service):
    expert, review = pools["expert"].id, pools["review"].id
    task = task_for_clip(ls, expert, "female-slow-high-quiet.wav")
    twice = _user(ls, 1)
    first = ls.annotations.create(id=task.id, result=to_result(AGREEING_2), completed_by=twice).id
    again = ls.annotations.create(id=task.id, result=to_result(AGREEING), completed_by=twice).id
    ls.annotations.create(id=task.id, result=to_result(AGREEING_2), completed_by=_user(ls, 2))
    # three annotations, LS's overlap, but two people: LS hands the task to nobody else, so ops must see it now
    meta = wait_for(lambda: (m := clesc_meta(ls, task.id)) and m.get("rejected") and m,
                    what="the incomplete verdict with the superseded annotation rejected")
    assert meta["status"] == "incomplete" and meta["rejected"] == [first]
    assert meta["reasons"][str(first)] == [
        {"code": "duplicate_annotation", "detail": f"superseded by annotation {again} of the same annotator"}]
    assert our_predictions(ls, task.id) == []  # no consensus of two people
    [rt] = wait_for(lambda: review_tasks_for(ls, review, first), what="the review task of the older annotation")
    assert f"superseded by annotation {again}" in rt.data["reasons"]
    decide(ls, rt.id, "uphold")  # cancelled (CLESC_CANCEL_ON_UPHOLD): the slot re-opens for a third person
    wait_for(lambda: ls.annotations.get(first).was_cancelled is True, what="the older annotation cancelled")
    third = ls.annotations.create(id=task.id, result=to_result(AGREEING), completed_by=_user(ls, 3)).id
    meta = wait_for(lambda: (m := clesc_meta(ls, task.id)) and m.get("status") == "accepted" and m,
                    what="the verdict with three people")
    assert meta["rejected"] == [] and not {str(again), str(third)} & set(meta["reasons"])
    assert len(our_predictions(ls, task.id)) == 1


def test_a_second_submission_takes_the_first_ones_place_in_the_annotators_skill(ls, pools, service):
    expert = pools["expert"].id
    task = task_for_clip(ls, expert, "gb-normal-low-loud.wav")
    first, *others = annotate_three(ls, task.id, records=(AGREEING_2, AGREEING_2, AGREEING))
    wait_for(lambda: (clesc_meta(ls, task.id) or {}).get("status") == "accepted", what="the first verdict")
    wait_for(lambda: first in service.store.evidence(expert, [first]), what="the first annotation's evidence")
    again = ls.annotations.create(id=task.id, result=to_result(AGREEING), completed_by=_user(ls, 1)).id
    meta = wait_for(lambda: (m := clesc_meta(ls, task.id)) and m.get("rejected") == [first] and m,
                    what="the older annotation superseded")
    assert meta["status"] == "needs_review"
    # what the older one said of its annotator is dropped: one task, one piece of evidence
    evidence = wait_for(lambda: (e := service.store.evidence(expert, [first, again, *others])) and first not in e and e,
                        what="the superseded annotation's evidence dropped")
    assert set(evidence) == {again, *others}


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


def _events_done(service, project_id: int, task_id: int) -> list[dict]:
    events = [e for e in service.store.events() if (e["project_id"], e["task_id"]) == (project_id, task_id)]
    return events if events and all(e["status"] == "done" for e in events) else []


def test_a_forged_webhook_naming_another_project_changes_nothing(ls, pools, service):
    """Any LS organisation member can read the webhook secret (GET /api/webhooks), so a webhook is a hint: one
    claiming a watched project for a task of another project is finished without effect (issue 14, item 6)."""
    crowd, expert, review = pools["crowd"].id, pools["expert"].id, pools["review"].id
    task = task_for_clip(ls, crowd, "gb-normal-low-loud.wav")
    ids = annotate_three(ls, task.id)
    [rt] = wait_for(lambda: review_tasks_for(ls, review, ids[2]), what="the review task")
    wait_for(lambda: not service.store.pending_event_ids(crowd, task.id), what="the crowd events processed")
    meta, seen = clesc_meta(ls, task.id), service.store.seen_live_versions(crowd)[task.id]
    reviews = len(service.store.all_reviews())

    for n, project in enumerate((expert, review)):  # another pool, and the Review project (decisions are read there)
        r = _post(service, _webhook_body(ls, ids[2], project, project=project, updated_at=f"2030-01-0{n + 1}T00:00:00Z"))
        assert r.status_code == 202
        [event] = wait_for(lambda: _events_done(service, project, task.id), what="the forged event finished")
        assert event["error"] == f"task {task.id} is not in project {project}"
    missing = 2_000_000_000  # a task LS does not have: finished too, not retried for ever
    body = _webhook_body(ls, ids[0], expert, project=expert, task=missing)
    assert _post(service, body).status_code == 202
    wait_for(lambda: _events_done(service, expert, missing), what="the event of a missing task finished")

    assert service.store.verdict(expert, task.id) is None and service.store.verdict(review, task.id) is None
    assert len(review_tasks_for(ls, review, ids[2])) == 1 and len(service.store.all_reviews()) == reviews
    assert clesc_meta(ls, task.id) == meta and len(our_predictions(ls, task.id)) == 1
    assert service.store.seen_live_versions(crowd)[task.id] == seen
    assert "is not in project" in worker_logs(service)


@pytest.mark.parametrize("secret", [None, "", "wrong-secret"])
def test_missing_or_wrong_secret_is_401_and_stores_nothing(ls, pools, service, secret):
    before = len(service.store.events())
    body = {"action": "ANNOTATION_CREATED", "annotation": {"id": 999999, "task": 1, "result": []},
            "project": {"id": pools["crowd"].id}}
    r = _post(service, body, secret=secret)
    assert r.status_code == 401
    assert len(service.store.events()) == before


def test_the_secret_anywhere_but_its_header_is_refused_and_never_logged(service, pools):
    """In the query string, in Authorization, in a cookie: 401. test_no_secret_reaches_store_logs_or_exports
    (later in this module) then finds it in no log: the access log has no query strings."""
    body = {"action": "ANNOTATION_CREATED", "annotation": {"id": 999998, "task": 1, "result": []},
            "project": {"id": pools["crowd"].id}}
    secret = service.settings.webhook_secret
    for query, headers in ((f"?secret={secret}", {}), ("", {"Authorization": f"Token {secret}"}),
                           ("", {"Cookie": f"{SECRET_HEADER}={secret}"})):
        r = requests.post(service.url + "/webhook" + query, data=json.dumps(body), timeout=5,
                          headers={"Content-Type": "application/json", **headers})
        assert r.status_code == 401


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
    for w in service.workers:
        w.stop(signal.SIGKILL)
    ids = annotate_three(ls, task.id)  # events stored and queued while no worker runs
    log = service.home / "worker-0.log"
    offset = log.stat().st_size
    service.worker.start()
    wait_for(lambda: f"judging project {expert} task {task.id}" in log.read_text()[offset:], 60, 0.05,
             what="the worker to start the job")
    service.worker.stop(signal.SIGKILL)  # mid-job: between reading LS and writing back, or during it
    for w in service.workers:
        w.start()
    wait_for(lambda: not service.store.pending_event_ids(expert, task.id) and service.store.verdict(expert, task.id),
             90, what="the job to finish after the restart")
    wait_for(lambda: (clesc_meta(ls, task.id) or {}).get("status") == "needs_review", what="meta")
    one_each(ls, review, task.id, [ids[2]])


def test_no_secret_reaches_store_logs_or_exports(ls, service, tmp_path):
    secrets = [*PAYLOAD_SECRETS, service.settings.webhook_secret, service.settings.ls_token]
    assert service.store.events(), "the other tests stored events"
    dump = service.store.dump_text()
    logs = (service.home / "serve.log").read_text() + worker_logs(service)
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
def reliability_project(watched_project):
    """A pool project of its own (20 tasks on the sample clips), watched by the running service."""
    return watched_project("Reliability test", SPAMMER_TASKS)


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
    for w in service.workers:
        w.stop()
    kept = service.store.skills(reliability_project, [spammer, *honest])
    for w in service.workers:
        w.start()
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


# --- ops decisions: who, on which version, and what they leave behind --------------------------------------


def _other_user_decides(ls, review_task_id: int, decision: str, user: int) -> None:
    ls.annotations.create(id=review_task_id, completed_by=user, result=[
        {"from_name": "decision", "to_name": "audio", "type": "choices", "value": {"choices": [decision]}}])


def test_review_task_shows_everything_ops_need_and_only_ops_decide(ls, ls_server, pools, service):
    crowd, expert, review = pools["crowd"].id, pools["expert"].id, pools["review"].id
    task = task_for_clip(ls, crowd, "variable-pitch.wav")  # a clip no other test of the session labels in Crowd
    partner = task_for_clip(ls, expert, "variable-pitch.wav")
    # the pools linked as `clesc sync` links them, so the worker can tell the partner of each verdict
    from label_config.meta import PairMeta, read_pair, with_pair

    ls.tasks.update(task.id, meta=with_pair(ls.tasks.get(task.id).meta, PairMeta("expert", expert, partner.id)))
    ls.tasks.update(partner.id, meta=with_pair(ls.tasks.get(partner.id).meta, PairMeta("crowd", crowd, task.id)))
    ids = annotate_three(ls, task.id)
    [rt] = wait_for(lambda: review_tasks_for(ls, review, ids[2]), what="the review task")
    data = rt.data
    assert data["clip"] == "variable-pitch.wav" and data["pool"] == "crowd"
    assert data["annotator_email"] == "annotator3@example.com"
    assert data["pool_task_url"].endswith(f"/projects/{crowd}/data?task={task.id}")
    details = data["details"]
    assert "variable-pitch.wav" in details and "annotator3@example.com (under review)" in details
    assert all(f"annotator{n}@example.com" in details for n in (1, 2, 3)) and "agitated" in details
    assert ls.projects.get(review).show_skip_button is False
    # the partner pool's task learns the verdict at once
    link = wait_for(lambda: (p := read_pair(ls.tasks.get(partner.id).meta)) and p.status == "needs_review" and p,
                    what="the partner's pair meta")
    assert link.task == task.id and link.judged_by == "judge"
    # a decision by someone who is not ops is ignored, and says so
    intruder = _user(ls, 77)
    _other_user_decides(ls, rt.id, "overturn", intruder)
    from label_config.meta import read_review

    noted = wait_for(lambda: (m := read_review(ls.tasks.get(rt.id).meta)) and m.ignored and m, what="the ignored decision")
    assert noted.ignored[0]["by"] == "annotator77@example.com"
    assert ls.annotations.get(ids[2]).last_action != "rejected" and service.store.review_by_task(rt.id)["decision"] is None
    # ops decide: uphold; the decision stays in the pool task's meta with its reasons, decider and comment
    ls.annotations.create(id=rt.id, result=[
        {"from_name": "decision", "to_name": "audio", "type": "choices", "value": {"choices": ["uphold"]}},
        {"from_name": "comment", "to_name": "audio", "type": "textarea", "value": {"text": ["calm and agitated at once"]}}])
    decided = wait_for(lambda: (m := clesc_meta(ls, task.id)) and m.get("decisions") and m, what="the decision recorded")
    [entry] = decided["decisions"]
    assert entry["decision"] == "uphold" and entry["annotation_id"] == ids[2] and "contradiction" in entry["reasons"]
    assert entry["decided_by"] == ls_server.credentials.username and entry["comment"] == "calm and agitated at once"
    assert ls.annotations.get(ids[2]).was_cancelled is True
    wait_for(lambda: read_review(ls.tasks.get(rt.id).meta).state == "upheld", what="the Review task's state")
    wait_for(lambda: read_pair(ls.tasks.get(partner.id).meta).status == "incomplete", what="the partner told")
    # uphold, then overturn: the annotation comes back
    mine = next(a for a in ls.annotations.list(id=rt.id) if a.completed_by != intruder)
    ls.annotations.update(mine.id, result=[
        {"from_name": "decision", "to_name": "audio", "type": "choices", "value": {"choices": ["overturn"]}}])
    wait_for(lambda: ls.annotations.get(ids[2]).was_cancelled is False, what="the annotation restored")
    meta = wait_for(lambda: (m := clesc_meta(ls, task.id)) and len(m.get("decisions", [])) == 2
                    and m["status"] == "accepted" and m, what="both decisions kept, the task judged again")
    assert [d["decision"] for d in meta["decisions"]] == ["uphold", "overturn"]
    assert ids[2] not in meta["rejected"]


def test_a_decision_on_labels_the_annotator_has_changed_since_is_stale(ls, pools, service):
    crowd, review = pools["crowd"].id, pools["review"].id
    task = task_for_clip(ls, crowd, "calm-slow-low-quiet.wav")
    ids = annotate_three(ls, task.id)
    [rt] = wait_for(lambda: review_tasks_for(ls, review, ids[2]), what="the review task")
    # while ops read the review, the annotator fixes the labels; the decision comes in for the old ones
    for w in service.workers:
        w.stop()
    fixed = LabelRecord("fast", "high", "loud", emotion=("excited",))
    ls.annotations.update(ids[2], result=to_result(fixed))
    decide(ls, rt.id, "uphold")
    for w in service.workers:
        w.start()
    from label_config.meta import read_review

    state = wait_for(lambda: (m := read_review(ls.tasks.get(rt.id).meta)) and m.state != "open" and m.state,
                     timeout=60, what="the decision handled")
    assert state == "stale"
    wait_for(lambda: ids[2] not in (clesc_meta(ls, task.id) or {}).get("rejected", [ids[2]]), what="judged again")
    fresh = ls.annotations.get(ids[2])
    assert fresh.was_cancelled is False and fresh.last_action != "rejected"  # the fixed labels are not cancelled


# --- poison events (issue 14, item 7) -----------------------------------------------------------------

def test_events_whose_jobs_keep_failing_fail_after_their_attempts_and_can_be_retried(ls, pools, service):
    """A worker whose LS token was revoked (LS answers 401, not retried): the task's events count their
    attempts with backoff, then are `failed`, listed by /health and `clesc events --failed`; once the
    token is right again, `clesc events --retry` has the task judged. (A task LS does not have is not
    such a failure: its events finish without effect, see the forged-webhook test.)"""
    expert = pools["expert"].id
    task = task_for_clip(ls, expert, "calm-slow-low-quiet.wav")
    for w in service.workers:
        w.stop()
    broken = Proc(["worker"], {**service.env, "CLESC_LS_TOKEN": "revoked-token-0"}, service.home / "broken-worker.log")
    broken.start()
    try:
        annotate_three(ls, task.id, records=(AGREEING, AGREEING_2, AGREEING))

        def failed():
            return [e for e in service.store.failed_events() if e["task_id"] == task.id and e["project_id"] == expert]

        events = wait_for(lambda: (f := failed()) and len(f) == 3 and f, 120, what="the events to fail after their attempts")
    finally:
        broken.stop()
    assert {e["attempts"] for e in events} == {MAX_ATTEMPTS} and {e["status"] for e in events} == {"failed"}
    assert "401" in events[0]["error"] and "revoked-token-0" not in events[0]["error"]
    health = requests.get(service.url + "/health", timeout=5).json()
    assert health["events"]["failed"] >= 3
    assert {e["id"] for e in events} <= {e["id"] for e in health["events"]["failed_recent"]}
    listing = subprocess.run([CLESC, "events", "--failed"], env=service.env, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and f"event {events[0]['id']}: project {expert} task {task.id}" in listing.stdout
    assert service.store.verdict(expert, task.id) is None
    for w in service.workers:
        w.start()
    time.sleep(2)  # nothing more is tried by itself: the count stays where it stopped
    assert len(failed()) == 3 and service.store.verdict(expert, task.id) is None
    retried = subprocess.run([CLESC, "events", "--retry", str(events[0]["id"])], env=service.env, capture_output=True,
                             text=True, timeout=60)
    assert retried.returncode == 0 and "1 task(s) queued again" in retried.stdout, retried.stderr
    wait_for(lambda: service.store.verdict(expert, task.id) and not service.store.pending_event_ids(expert, task.id),
             120, what="the retried task judged")
    assert (clesc_meta(ls, task.id) or {}).get("status") == "accepted"
    assert len(failed()) == 2  # only the event retried; `--all-failed` would take the other two


# --- slow clients (issue 14, item 9) ------------------------------------------------------------------

def test_slow_clients_do_not_hold_the_service(ls, pools, service):
    """16 connections that trickle their headers (a byte every 0.5 s for ~40 s): 20 legitimate webhooks
    are still answered, each within a 10 s client timeout (LS itself waits 1 s). On gunicorn's gthread
    worker (2 x 4 threads, no read timeout) every thread blocks reading a slow client's headers."""
    import socket
    import threading

    stop = threading.Event()
    host, port = service.url.removeprefix("http://").split(":")
    request = (f"POST /webhook HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"{SECRET_HEADER}: {service.settings.webhook_secret}\r\nContent-Length: 10\r\n").encode()

    def slow_client():
        with socket.create_connection((host, int(port)), timeout=60) as s:
            for i in range(80):
                if stop.is_set():
                    return
                try:
                    s.sendall(request[i % len(request):i % len(request) + 1])
                except OSError:
                    return  # dropped by the server's read timeout: fine
                time.sleep(0.5)

    threads = [threading.Thread(target=slow_client, daemon=True) for _ in range(16)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)  # every slow client connected and sending
        crowd = pools["crowd"].id
        task = task_for_clip(ls, crowd, "plain-normal-medium.wav")
        codes = []
        for n in range(20):
            body = {"action": "ANNOTATION_UPDATED", "project": {"id": crowd},
                    "annotation": {"id": 555_000 + n, "task": task.id, "project": crowd, "result": [],
                                   "updated_at": f"2026-02-0{1 + n % 9}T00:00:{n:02d}Z"}}
            r = requests.post(service.url + "/webhook", data=json.dumps(body), timeout=10,
                              headers={"Content-Type": "application/json", SECRET_HEADER: service.settings.webhook_secret})
            codes.append(r.status_code)
        assert all(t.is_alive() for t in threads[:8]), "the slow clients were still sending"
        assert codes == [202] * 20
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)


# --- faults in the scaled-out mode ---------------------------------------------------------------------

scaled_only = pytest.mark.parametrize("mode", ["postgres-redis"], indirect=True)
"""A fault of the scaled-out mode's own servers: the test runs in that mode only."""


def _one_verdict_each(ls, service, project: int, tasks, review: int, rejected: dict[int, list[int]]):
    for t in tasks:
        assert not service.store.pending_event_ids(project, t.id)
        one_each(ls, review, t.id, rejected.get(t.id, []))


@scaled_only
def test_redis_restarted_mid_run_loses_no_job_and_no_event(ls, pools, service):
    crowd, review = pools["crowd"].id, pools["review"].id
    first, second = (task_for_clip(ls, crowd, c) for c in ("rushed-fast-high-loud.wav", "female-slow-high-quiet.wav"))
    for w in service.workers:
        w.stop()
    first_ids = annotate_three(ls, first.id)  # jobs in Redis, no worker to take them
    service.redis.stop()  # restarted with jobs queued: the append-only file keeps them
    second_ids = annotate_three(ls, second.id)  # while Redis is down: accepted and stored, not enqueued
    service.redis.start()
    for w in service.workers:
        w.start()
    for t in (first, second):
        wait_for(lambda t=t: (clesc_meta(ls, t.id) or {}).get("status") == "needs_review"
                 and not service.store.pending_event_ids(crowd, t.id), 180, what=f"task {t.id} judged")
    _one_verdict_each(ls, service, crowd, (first, second), review, {first.id: [first_ids[2]], second.id: [second_ids[2]]})
    assert all(e["status"] == "done" for e in service.store.events() if e["task_id"] in (first.id, second.id))
    # restarted again under running workers: they reconnect and go on
    service.redis.stop()
    service.redis.start()
    third = task_for_clip(ls, crowd, "variable-pace.wav")
    third_ids = annotate_three(ls, third.id)
    wait_for(lambda: (clesc_meta(ls, third.id) or {}).get("status") == "needs_review"
             and not service.store.pending_event_ids(crowd, third.id), 180, what="judged after the second restart")
    _one_verdict_each(ls, service, crowd, [third], review, {third.id: [third_ids[2]]})


@scaled_only
def test_postgres_restarted_mid_run_is_503_then_reconciled(ls, pools, service):
    expert, review = pools["expert"].id, pools["review"].id
    task = task_for_clip(ls, expert, "variable-volume.wav")
    service.store_db.stop()
    try:
        ids = annotate_three(ls, task.id)  # LS's webhooks meet a service without its store
        body = _webhook_body(ls, ids[0], expert)
        r = _post(service, body)
        assert r.status_code == 503 and r.headers.get("Retry-After"), r.text
        health = requests.get(service.url + "/health", timeout=10)
        assert health.status_code == 503 and health.json()["store"].startswith("error")
    finally:
        service.store_db.start()
    wait_for(lambda: healthy(service.url), 60, what="the service with its store back")
    r = subprocess.run([CLESC, "reconcile"], env=service.env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: (clesc_meta(ls, task.id) or {}).get("status") == "needs_review", 60, what="reconciled")
    _one_verdict_each(ls, service, expert, [task], review, {task.id: [ids[2]]})
