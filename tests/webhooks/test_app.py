"""The webhook endpoint with Flask's test client, a real SQLite store and a real Huey queue (no LS)."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from label_config.redact import redact
from webhooks.app import SECRET_HEADER, create_app
from webhooks.ingest import BadPayload, parse_webhook
from webhooks.judge import AnnotationVerdict, Reason, TaskVerdict
from webhooks.queue import JobQueue
from webhooks.settings import Settings
from webhooks.store import Store
from webhooks.worker import parse_decision, with_overturns

SECRET = "unit-secret-5e1f"
PROJECT = 7


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    home = tmp_path_factory.mktemp("ingest")
    settings = Settings.from_env({"CLESC_HOME": str(home), "CLESC_WEBHOOK_SECRET": SECRET,
                                  "CLESC_MAX_BODY_BYTES": "65536"})
    store = Store(settings.database_url)
    store.set_projects([(PROJECT, "crowd", "Crowd")])
    app = create_app(settings, store, JobQueue.from_settings(settings))
    c = app.test_client()
    c.store, c.queue = store, app.extensions["clesc"]["queue"]
    return c


def body(annotation_id=1, updated_at="2026-11-27T10:00:00Z", **project):
    return {"action": "ANNOTATION_CREATED",
            "annotation": {"id": annotation_id, "task": 3, "project": PROJECT, "updated_at": updated_at,
                           "result": [], "completed_by": 2, "was_cancelled": False},
            "project": {"id": PROJECT, "token": "tok-unit-1", "task_data_password": "pw-unit-1", **project},
            "task": {"id": 3, "data": {"audio": "/x.wav"}}}


def post(client, payload, secret=SECRET, raw=None):
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    return client.post("/webhook", data=raw if raw is not None else json.dumps(payload), headers=headers,
                       content_type="application/json")


def test_accepted_event_is_stored_without_secrets_and_enqueued(client, caplog):
    caplog.set_level(logging.INFO)
    pending = client.queue.pending_count()
    r = post(client, body(annotation_id=11))
    assert r.status_code == 202
    [event] = [e for e in client.store.events() if e["annotation_id"] == 11]
    assert event["status"] == "pending" and event["task_id"] == 3 and event["project_id"] == PROJECT
    assert client.queue.pending_count() == pending + 1
    for secret in ("tok-unit-1", "pw-unit-1", SECRET):
        assert secret not in client.store.dump_text() and secret not in caplog.text


def test_same_delivery_twice_is_stored_once(client):
    assert post(client, body(annotation_id=12)).status_code == 202
    r = post(client, body(annotation_id=12))
    assert r.status_code == 200 and r.json["status"] == "duplicate"
    assert len([e for e in client.store.events() if e["annotation_id"] == 12]) == 1
    assert post(client, body(annotation_id=12, updated_at="2026-11-27T11:00:00Z")).status_code == 202


def test_unwatched_project_and_other_actions_are_ignored(client):
    before = len(client.store.events())
    other = body()
    other["project"]["id"] = other["annotation"]["project"] = 999
    assert post(client, other).json["status"] == "ignored"
    assert post(client, {"action": "PROJECT_UPDATED", "project": {"id": PROJECT}}).json["status"] == "ignored"
    assert len(client.store.events()) == before


def test_health_reports_store_and_queue(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.json["store"] == "ok" and r.json["queue"]["status"] == "ok"


def test_body_over_the_limit_is_413(client):
    assert post(client, None, raw=b"{" + b" " * 70_000 + b"}").status_code == 413


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
webhook_like = st.fixed_dictionaries(
    {"action": st.sampled_from(["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]) | st.text(max_size=10)},
    optional={"annotation": json_values | st.fixed_dictionaries({}, optional={
        "id": json_values, "task": json_values, "result": json_values, "updated_at": json_values}),
              "project": json_values | st.fixed_dictionaries({}, optional={"id": json_values})},
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300).map(lambda b: ("raw", b)), json_values.map(lambda v: ("json", v)),
                 webhook_like.map(lambda v: ("json", v))))
def test_any_body_gets_a_clear_answer_never_a_500(client, example):
    kind, value = example
    before = len(client.store.events())
    r = post(client, None, raw=value) if kind == "raw" else post(client, value)
    assert r.status_code in (200, 202, 400, 413), r.data
    if r.status_code >= 400:
        assert r.json["detail"]
    if r.status_code != 202:
        assert len(client.store.events()) == before


@pytest.mark.parametrize("secret", [None, "", "nope", SECRET + "x"])
def test_wrong_or_missing_secret(client, secret):
    before = len(client.store.events())
    assert post(client, body(annotation_id=77), secret=secret).status_code == 401
    assert len(client.store.events()) == before


def test_parse_webhook_keeps_only_allow_listed_fields():
    event = parse_webhook(body(annotation_id=5) | {"annotation": {**body()["annotation"], "id": 5, "token": "t"}})
    assert "token" not in event.annotation and event.project_id == PROJECT
    with pytest.raises(BadPayload, match="annotation.id"):
        parse_webhook({"action": "ANNOTATION_CREATED", "annotation": {"id": True, "task": 1}, "project": {"id": 1}})


def test_redact_at_any_depth():
    assert redact({"a": [{"api_key": "k", "b": {"Password": "p", "ok": 1}}]}) == \
        {"a": [{"api_key": "[redacted]", "b": {"Password": "[redacted]", "ok": 1}}]}


def test_parse_decision_by_alias_or_label():
    from label_config.render import REVIEW_DECISIONS

    assert parse_decision([{"from_name": "decision", "value": {"choices": ["uphold"]}}]) == "uphold"
    assert parse_decision([{"from_name": "decision", "value": {"choices": [REVIEW_DECISIONS["overturn"]]}}]) == "overturn"
    assert parse_decision([{"from_name": "comment", "value": {"text": ["x"]}}]) is None


def test_overturn_accepts_the_annotation_and_recomputes_status():
    consensus = {"pace": "fast", "pitch": "high", "volume": None, "emotion": [], "voice": []}
    v = TaskVerdict(1, "needs_review", consensus,
                    (AnnotationVerdict(5, 1, "reject", (Reason("contradiction", "calm vs agitated"),)),
                     AnnotationVerdict(6, 2, "accept")), {"backend": "rules", "version": "rules-1"})
    after = with_overturns(v, {5})
    assert after.rejected_ids == () and after.status == "no_consensus"
    assert with_overturns(v, set()) is v
