"""A small report's data shaped as a live Label Studio gives it: the demo's 8 clips, tasks with annotations,
the judge's meta (with ops decisions written here by hand), the ML backend's predictions, users' e-mails.

What it holds, so tests can count by hand:

- Expert project 1, tasks 101-108; Crowd project 2, tasks 201-208; LS at http://ls.example.org:8080.
- Experts e1, e2, e3 (LS users 11-13, CLESC workers: `e1@clesc.invalid`, ...) agree on pace, pitch and
  volume of all 8 clips; 18 distinct emotion words between them. 60 s per annotation.
- Crowd: ann, bob, cid (users 21-23, e-mails ann@example.com, ...), 20 s per annotation, 20 distinct
  words, 12 of them words no expert used. Ann says "fast" on clip 0 (slow) where everybody else says
  slow. The admin (user 1, admin@example.com) labelled clip 0 once, as the others did, with the
  word "content" (which otherwise only cid's cancelled annotation has). On clip 5 (pitch low) bob
  and cid say high: the one clip where the two pools' consensuses differ.
- Clip 2 (crowd task 203): cid's annotation 2032 was rejected, upheld, and cancelled (still listed,
  was_cancelled); a second upheld rejection (annotation 2039) is no longer listed at all, and its
  decision names no annotator. Clip 3 (task 204): bob's annotation 2041 rejected and overturned.
  Clip 4 (task 205): ann's annotation 2050 is a proposed rejection awaiting review.
- ML backend predictions on every task, made at 09:00; it says the clip's value except pace "fast"
  on clip 7 (all say "normal" there). Annotations are made at 10:00, except bob's on clip 1 (08:30,
  before the prediction existed). The newest time in the data: the overturn, 2025-05-03T12:00:00Z.
"""

from __future__ import annotations

from typing import Any

from label_config import LabelRecord, to_result
from scripts.pools.dataset import Dataset
from scripts.pools.sources import add_ls_tasks

LS_URL = "http://ls.example.org:8080"
PROJECTS = {"expert": 1, "crowd": 2}
PACES, PITCHES, VOLUMES = ("slow", "normal", "fast"), ("low", "medium", "high"), ("quiet", "medium", "loud")
EXPERT_WORDS = ("happy", "joyful", "cheerful", "delighted", "glad", "sad", "gloomy", "hurt", "angry", "furious",
                "calm", "serene", "anxious", "nervous", "bored", "tired", "surprised", "astonished")
CROWD_ONLY = ("content", "pleased", "miserable", "unhappy", "annoyed", "irritated", "excited", "peaceful", "worried",
              "scared", "sleepy", "amazed")
CROWD_WORDS = EXPERT_WORDS[:8] + CROWD_ONLY  # 20 distinct, 12 only the crowd used
EMAILS = {1: "admin@example.com", 11: "e1@clesc.invalid", 12: "e2@clesc.invalid", 13: "e3@clesc.invalid",
          21: "ann@example.com", 22: "bob@example.com", 23: "cid@example.com"}
USERS = {"expert": (11, 12, 13), "crowd": (21, 22, 23)}
SECONDS = {"expert": 60.0, "crowd": 20.0}
PREDICTED_AT = "2025-05-01T09:00:00Z"


def clip_audio(i: int) -> str:
    return f"/data/local-files/?d=clips/clip{i}.wav"


def truth(i: int) -> tuple[str, str, str]:
    return PACES[i % 3], PITCHES[(i + 1) % 3], VOLUMES[(i + 2) % 3]


def _annotation(aid: int, user: int, record: LabelRecord, seconds: float, at: str = "2025-05-01T10:00:00Z",
                **extra: Any) -> dict[str, Any]:
    return {"id": aid, "completed_by": user, "result": to_result(record), "lead_time": seconds,
            "created_at": at, "updated_at": at, "was_cancelled": False, **extra}


def tasks(pool: str) -> list[dict[str, Any]]:
    out = []
    words = EXPERT_WORDS if pool == "expert" else CROWD_WORDS
    for i in range(8):
        tid = (100 if pool == "expert" else 200) + i + 1
        pace, pitch, volume = truth(i)
        annotations = []
        for j, user in enumerate(USERS[pool]):
            given = "fast" if (pool, i, j) == ("crowd", 0, 0) else pace  # clip 0 is slow: ann alone says fast
            heard = "high" if pool == "crowd" and i == 5 and j > 0 else pitch  # clip 5 is low: bob and cid say high
            record = LabelRecord(given, heard, volume, emotion=(words[(3 * i + j) % len(words)],))
            at = "2025-05-01T08:30:00Z" if (pool, i, user) == ("crowd", 1, 22) else "2025-05-01T10:00:00Z"
            annotations.append(_annotation(tid * 10 + j, user, record, SECONDS[pool], at,
                                           was_cancelled=(pool, i, j) == ("crowd", 2, 2)))
        if pool == "crowd" and i == 0:
            annotations.append(_annotation(tid * 10 + 3, 1, LabelRecord(pace, pitch, volume, emotion=("content",)), 20.0))
        meta: dict[str, Any] = {"status": "accepted", "consensus": {"pace": pace, "pitch": pitch, "volume": volume,
                                                                    "emotion": [words[(3 * i) % len(words)]], "voice": []},
                                "rejected": [], "reasons": {}, "judge": {"backend": "rules", "version": "rules-1"}}
        if pool == "crowd" and i == 2:
            meta["decisions"] = [
                {"annotation_id": 2032, "decision": "uphold", "reasons": ["contradiction"], "decided_by": "ops@example.com",
                 "decided_at": "2025-05-02T12:00:00Z", "comment": "calm and agitated", "version": "review-1"},
                {"annotation_id": 2039, "decision": "uphold", "reasons": ["empty_description"], "decided_by": 1,
                 "decided_at": "2025-05-02T12:30:00Z", "comment": "", "version": "review-1"}]
        if pool == "crowd" and i == 3:
            meta["decisions"] = [{"annotation_id": 2041, "decision": "overturn", "reasons": ["emotion_outlier"],
                                  "decided_by": 1, "decided_at": "2025-05-03T12:00:00Z", "comment": "fine",
                                  "version": "review-1"}]
        if pool == "crowd" and i == 4:
            meta.update(status="needs_review", rejected=[2050],
                        reasons={"2050": [{"code": "emotion_outlier", "detail": "nothing like the others"}]})
        predicted = ("fast" if i == 7 else pace, pitch, volume)
        prediction = {"model_version": "clesc-acoustic-1/default", "score": 0.8, "created_at": PREDICTED_AT,
                      "result": [{"from_name": name, "to_name": "audio", "type": "choices", "value": {"choices": [v]}}
                                 for name, v in zip(("pace", "pitch", "volume"), predicted)]}
        out.append({"id": tid, "data": {"audio": clip_audio(i)}, "meta": {"clesc": meta},
                    "annotations": annotations, "predictions": [prediction]})
    return out


def dataset() -> Dataset:
    ds = Dataset(source=f"Label Studio {LS_URL}", ls_url=LS_URL, projects=dict(PROJECTS))
    for pool in ("expert", "crowd"):
        add_ls_tasks(ds, pool, tasks(pool), emails=EMAILS)
    return ds
