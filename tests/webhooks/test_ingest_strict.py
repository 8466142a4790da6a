"""Malformed webhook bodies are 4xx and store nothing (issue 14, item 8): the red-team's 500s one by one, and a
fuzz test of over 1,000 bodies, against the endpoint with a real SQLite store and a real Huey queue (no LS)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from sqlalchemy import text
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from webhooks.app import SECRET_HEADER, create_app
from webhooks.ingest import MAX_DEPTH, MAX_ID, decode_body
from webhooks.queue import JobQueue
from webhooks.settings import Settings
from webhooks.store import ColumnOverflow, Store

SECRET = "strict-secret-93ac"
PROJECT = 7
FUZZ_BODIES = 1200
"""Examples the fuzz test asks hypothesis for; it asserts at least 1,000 were sent."""


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    home = tmp_path_factory.mktemp("strict")
    settings = Settings.from_env({"CLESC_HOME": str(home), "CLESC_WEBHOOK_SECRET": SECRET})
    store = Store(settings.database_url)
    store.set_projects([(PROJECT, "crowd", "Crowd")])
    app = create_app(settings, store, JobQueue.from_settings(settings))
    c = app.test_client()
    c.store = store
    return c


def ls_body(annotation_id: int = 1, **annotation) -> dict:
    """An LS ANNOTATION_CREATED body as LS 1.23 sends it (shortened), secrets included."""
    return {"action": "ANNOTATION_CREATED",
            "annotation": {"id": annotation_id, "task": 3, "project": PROJECT, "completed_by": 2,
                           "created_at": "2026-11-27T14:56:55.130518Z", "updated_at": "2026-11-27T14:56:55.130518Z",
                           "was_cancelled": False, "ground_truth": False, "lead_time": 12.5, "last_action": None,
                           "result": [{"from_name": "pace", "to_name": "audio", "type": "choices",
                                       "value": {"choices": ["fast"]}},
                                      {"from_name": "emotion", "to_name": "audio", "type": "taxonomy",
                                       "value": {"taxonomy": [["joy", "happy"]]}}], **annotation},
            "project": {"id": PROJECT, "title": "Crowd", "token": "tok-strict-1", "task_data_password": "pw-strict-1",
                        "label_config": "<View><Audio name=\"audio\" value=\"$audio\"/></View>"},
            "task": {"id": 3, "data": {"audio": "/data/local-files/?d=clips/a.wav"}, "meta": {}}}


def rows(store: Store) -> int:
    """Rows in the store's events table."""
    with store.engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM events")).scalar_one()


def post(client, raw: bytes):
    return client.post("/webhook", data=raw, headers={SECRET_HEADER: SECRET}, content_type="application/json")


def deep(n: int, open_: str = "[", close: str = "]") -> str:
    return open_ * n + close * n if open_ == "[" else '{"a":' * n + "0" + "}" * n


def raw_with(fragment: str, where: str) -> bytes:
    """The LS body with the value at `where` ("annotation.id", "task.data") replaced by a raw JSON text
    fragment (one that json.dumps could not write)."""
    body = ls_body()
    node, key = where.split(".")
    body[node][key] = "@@RAW@@"
    return json.dumps(body).replace('"@@RAW@@"', fragment).encode()


# The red-team's bodies that were 500 (or stored what PostgreSQL refuses); each is a 400 with a detail now.
RED_TEAM = {
    "annotation id 2**63 (OverflowError)": raw_with(str(2**63), "annotation.id"),
    "task id 2**64": raw_with(str(2**64), "annotation.task"),
    "project id past the store's 32-bit column": raw_with(str(MAX_ID + 1), "project.id"),
    "annotation id past the store's 32-bit column": raw_with(str(MAX_ID + 1), "annotation.id"),
    "1,000 deep in task.data (RecursionError)": raw_with(deep(1000), "task.data"),
    "1,000 deep objects at the top": ('{"action": "ANNOTATION_CREATED", "x": ' + deep(1000, "{") + "}").encode(),
    "600 deep in result (RecursionError in redact)": raw_with(deep(600), "annotation.result"),
    "just past the depth limit": raw_with(deep(MAX_DEPTH), "annotation.result"),
    "updated_at a lone surrogate (UnicodeEncodeError)": raw_with('"\\ud800"', "annotation.updated_at"),
    "a lone surrogate as a key": raw_with('{"\\udc00": 1}', "task.data"),
    "NUL in a string": raw_with('"a\\u0000b"', "annotation.updated_at"),
    "updated_at of 1,000 characters (String(40))": raw_with(json.dumps("2" * 1000), "annotation.updated_at"),
    "NaN": raw_with("NaN", "annotation.lead_time"),
    "Infinity": raw_with("Infinity", "annotation.lead_time"),
    "1e999": raw_with("1e999", "annotation.lead_time"),
    "a 5,000-digit integer": raw_with("9" * 5000, "annotation.lead_time"),
    "UTF-16": json.dumps(ls_body()).encode("utf-16"),
    "UTF-8 with a BOM": b"\xef\xbb\xbf" + json.dumps(ls_body()).encode(),
    "Latin-1 bytes": json.dumps(ls_body(), ensure_ascii=False).replace("fast", "f\u00e4st").encode("latin-1"),
}


@pytest.mark.parametrize("raw", RED_TEAM.values(), ids=RED_TEAM.keys())
def test_red_team_bodies_are_400_and_store_nothing(client, raw):
    before = rows(client.store)
    r = post(client, raw)
    assert r.status_code == 400, r.data[:300]
    assert r.json["detail"]
    assert rows(client.store) == before


def test_the_real_shape_still_passes_and_depth_up_to_the_limit_is_fine(client):
    assert post(client, json.dumps(ls_body(annotation_id=90)).encode()).status_code == 202
    inside = raw_with(deep(MAX_DEPTH - 4), "task.data")  # body -> task -> data: 2 levels, the fragment the rest
    assert post(client, inside.replace(b'"id": 1,', b'"id": 91,', 1)).status_code == 202
    assert post(client, raw_with(str(MAX_ID), "annotation.id")).status_code == 202
    assert post(client, raw_with('"\\ud83d\\ude00 ok"', "annotation.last_action")).status_code == 202  # a pair is fine


def test_depth_check_ignores_brackets_inside_strings():
    assert decode_body(json.dumps({"s": "[" * 5000, "t": "{]" * 100}).encode())["s"] == "[" * 5000
    assert decode_body(json.dumps({"s": '\\"[[[' * 100}).encode())


def test_the_store_refuses_what_does_not_fit_its_columns(tmp_path):
    """The one column-size guard (webhooks/store.py check_fits): SQLite would store it, PostgreSQL would not."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(ColumnOverflow, match="annotation_updated_at holds at most 40"):
        store.add_event(delivery_key="k", source="webhook", action="ANNOTATION_CREATED", project_id=1, task_id=1,
                        annotation={"id": 1, "updated_at": "x" * 1000})
    with pytest.raises(ColumnOverflow, match="events.task_id holds 32-bit"):
        store.add_event(delivery_key="k", source="webhook", action="ANNOTATION_CREATED", project_id=1,
                        task_id=2**63, annotation=None)
    with pytest.raises(ColumnOverflow, match="annotations_seen.updated_at"):
        store.record_seen(1, 1, {5: "y" * 41})
    assert store.events() == [] and store.seen_live_versions(1) == {}


# --- fuzz ---------------------------------------------------------------------------------------------

NASTY = st.one_of(
    st.integers(min_value=2**63, max_value=2**70).map(str),
    st.integers(min_value=-(2**70), max_value=-(2**63)).map(str),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "9" * 4400]),
    st.integers(min_value=MAX_DEPTH + 1, max_value=1500).map(deep),
    st.integers(min_value=MAX_DEPTH + 1, max_value=1200).map(lambda n: deep(n, "{")),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3).map(json.dumps),  # lone surrogates
    st.text(max_size=5).map(lambda t: json.dumps(t + "\x00")),
)
"""Raw JSON fragments that make any body invalid wherever they stand."""
ID_FIELDS = ["annotation.id", "annotation.task", "project.id"]
BAD_IDS = st.integers(min_value=MAX_ID + 1, max_value=2**63 - 1).map(str) | st.integers(max_value=-1).map(str)
"""Integers that are fine elsewhere but not as the ids the store keeps."""

FIELDS = ["annotation.id", "annotation.task", "annotation.project", "project.id", "annotation.updated_at",
          "annotation.result", "annotation.lead_time", "annotation.completed_by", "task.data", "task.meta",
          "project.label_config", "action", "annotation", "project"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**40), max_value=2**40) | st.floats(allow_nan=False,
                                                                                         allow_infinity=False)
    | st.text(max_size=60),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@st.composite
def fuzzed_bodies(draw):
    """(raw body, known_invalid): an LS body with values replaced by odd JSON (may be valid or not), nasty
    fragments (always invalid), or damaged bytes (truncated, re-encoded, bytes flipped)."""
    body = ls_body(annotation_id=draw(st.integers(min_value=1, max_value=10**6)),
                   updated_at=draw(st.sampled_from(["2026-11-27T14:56:55.130518Z", "2026-11-28T09:00:00Z"])))
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        node, *rest = field.split(".")
        if rest:
            if isinstance(body.get(node), dict):
                body[node][rest[0]] = draw(json_values | st.text(min_size=30, max_size=80))
        else:
            body[node] = draw(json_values)
    text = json.dumps(body)
    invalid = False
    how = draw(st.sampled_from(["as is", "nasty anywhere", "bad id"]))
    if how == "nasty anywhere":
        field = draw(st.sampled_from(FIELDS))
        node, *rest = field.split(".")
        holder = body.get(node) if rest else None
        if rest and isinstance(holder, dict):
            holder[rest[0]] = "@@NASTY@@"
        else:
            body[node] = "@@NASTY@@"
        text, invalid = json.dumps(body).replace('"@@NASTY@@"', draw(NASTY), 1), True
    elif how == "bad id" and body.get("action") == "ANNOTATION_CREATED" and isinstance(body.get("annotation"), dict) \
            and isinstance(body.get("project"), dict):
        node, key = draw(st.sampled_from(ID_FIELDS)).split(".")
        body[node][key] = "@@NASTY@@"
        text, invalid = json.dumps(body).replace('"@@NASTY@@"', draw(BAD_IDS), 1), True
    raw = text.encode()
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip", "utf16", "latin1", "bom", "garbage"]))
    if damage == "truncate" and len(raw) > 2:
        raw, invalid = raw[:draw(st.integers(min_value=0, max_value=len(raw) - 2))], True
    elif damage == "flip":
        i = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(min_value=0x80, max_value=0xff))]) + raw[i + 1:]
        invalid = invalid or not _is_utf8(raw)
    elif damage == "utf16":
        raw, invalid = text.encode("utf-16"), True
    elif damage == "latin1":
        raw, invalid = b'{"action": "ANNOTATION_CREATED", "x": "\xe9"}', True
    elif damage == "bom":
        raw, invalid = b"\xef\xbb\xbf" + raw, True
    elif damage == "garbage":
        raw, invalid = draw(st.binary(max_size=200)), None  # may by chance be JSON; judged by the answer only
    return raw, invalid


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_fuzzed_bodies_never_500_and_invalid_ones_store_nothing(client):
    stats = Counter()

    @hsettings(max_examples=FUZZ_BODIES, deadline=None, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                      HealthCheck.data_too_large])
    @given(fuzzed_bodies())
    def send(example):
        raw, invalid = example
        before = rows(client.store)
        r = post(client, raw)
        stored = rows(client.store) - before
        stats["bodies"] += 1
        stats[f"status {r.status_code}"] += 1
        stats["known invalid"] += bool(invalid)
        if r.status_code >= 500:
            stats["5xx"] += 1
        if r.status_code != 202:
            stats["rows stored for a non-202"] += stored
        if invalid:
            stats["rows stored for a known-invalid body"] += stored
        assert r.status_code < 500, (r.status_code, raw[:200])
        assert r.status_code in (200, 202, 400, 413), r.status_code
        if r.status_code >= 400:
            assert r.json["detail"]
        if invalid:
            assert r.status_code == 400, (r.status_code, raw[:200])
        assert stored == (1 if r.status_code == 202 else 0)

    send()
    print("fuzz:", dict(sorted(stats.items())))
    assert stats["bodies"] >= 1000
    assert stats["known invalid"] >= 300 and stats["status 202"] >= 50  # both kinds were really exercised
    assert stats["5xx"] == 0 and stats["rows stored for a known-invalid body"] == 0
