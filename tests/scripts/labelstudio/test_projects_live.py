"""Against the session's real Label Studio server (tests/conftest.py)."""

from __future__ import annotations

import hashlib

import pytest
import requests
from label_studio_sdk.core.api_error import ApiError

from label_config import LabelRecord, labeling_config, parse_annotation, to_result
from label_config.schema import ATTRIBUTES, POOLS, REVIEW
from scripts.labelstudio.projects import ensure_pools, ensure_user, import_folder
from tests.helpers import task_for_clip


def test_label_studio_accepts_rendered_configs(ls, pools):
    for title in POOLS:
        project = ls.projects.get(pools[title].id)
        assert project.maximum_annotations == 3
        controls = set(project.parsed_label_config)
        assert controls == {"pace", "pitch", "volume", "emotion", "voice", "other"}
        ls.projects.validate_label_config(pools[title].id, label_config=labeling_config())
    review = ls.projects.get(pools[REVIEW].id)
    assert set(review.parsed_label_config) == {"decision", "comment"}


def test_label_studio_validation_is_real(ls, pools):
    broken = labeling_config().replace('toName="audio"', 'toName="nowhere"', 1)
    with pytest.raises(ApiError) as e:
        ls.projects.validate_label_config(pools["crowd"].id, label_config=broken)
    assert e.value.status_code == 400


def test_setup_is_idempotent(ls, pools):
    again = ensure_pools(ls, overlap=3, with_review=True)
    assert {t: p.id for t, p in again.items()} == {t: p.id for t, p in pools.items()}
    assert not any(p.created for p in again.values())
    titles = [p.title for p in ls.projects.list(page_size=100)]
    assert sorted(titles) == sorted(["Expert", "Crowd", "Review"])


def test_local_storage_import_is_served_back(ls, ls_server, pools, clips_dir):
    files = sorted(clips_dir.glob("*.wav"))
    for title in POOLS:
        assert import_folder(ls, pools[title].id, clips_dir) == len(files)
        assert import_folder(ls, pools[title].id, clips_dir) == len(files)  # re-sync adds nothing
    tasks = list(ls.tasks.list(project=pools["crowd"].id, page_size=100))
    assert len(tasks) == len(files)
    task = next(t for t in tasks if t.data["audio"].endswith("plain-normal-medium.wav"))
    r = requests.get(ls_server.url + task.data["audio"],
                     headers={"Authorization": f"Token {ls_server.credentials.token}"}, timeout=10)
    assert r.status_code == 200
    assert hashlib.sha256(r.content).digest() == hashlib.sha256((clips_dir / "plain-normal-medium.wav").read_bytes()).digest()


def _user(ls, n: int) -> int:
    return ensure_user(ls, f"annotator{n}@example.com")


def test_three_annotators_labels_read_back_and_parsed(ls, pools, clips_dir):
    task = task_for_clip(ls, pools["expert"].id, "calm-slow-low-quiet.wav")
    users = [_user(ls, n) for n in (1, 2, 3)]
    wanted = [
        LabelRecord("slow", "low", "quiet", emotion=("sad", "tired"), voice=("breathy",)),
        LabelRecord("normal", "low", "quiet", emotion=("melancholic",), voice=("monotonous", "husky"), other=("wistfully",)),
        LabelRecord("slow", "medium", "medium", emotion=("calm", "agitated")),
    ]
    for user, rec in zip(users, wanted):
        ls.annotations.create(id=task.id, result=to_result(rec), completed_by=user, lead_time=12.0)
    stored = ls.annotations.list(id=task.id)
    assert len(stored) == 3
    got = sorted((parse_annotation(a.dict()) for a in stored), key=lambda r: r.annotator)
    assert [r.annotator for r in got] == users
    for rec, want in zip(got, wanted):
        assert (rec.pace, rec.pitch, rec.volume, rec.emotion, rec.voice, rec.other) == (
            want.pace, want.pitch, want.volume, want.emotion, want.voice, want.other)
        assert rec.task_id == task.id and rec.annotation_id is not None and rec.lead_time == 12.0


def test_label_studio_stores_what_our_parser_refuses(ls, pools, clips_dir):
    """LS does not validate results (docs/platform-notes.md); our parser is the gate."""
    task = task_for_clip(ls, pools["crowd"].id, "gb-normal-low-loud.wav")
    result = [{"from_name": a, "to_name": "audio", "type": "choices", "value": {"choices": ["slow"]}} for a in ATTRIBUTES]
    result[0]["value"]["choices"] = ["superfast"]
    created = ls.annotations.create(id=task.id, result=result)
    from label_config import InvalidLabel

    with pytest.raises(InvalidLabel) as e:
        parse_annotation(ls.annotations.get(created.id).dict())
    assert {(p.field, p.value) for p in e.value.problems} >= {("pace", "superfast"), ("pitch", "slow")}
    ls.annotations.delete(created.id)
