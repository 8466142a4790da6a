"""Expert and crowd side by side against the session's real Label Studio: `clesc import` (CLESC file,
manifest, folder), annotate, judge (the real judge loop), `clesc sync` (also interrupted and re-run),
`clesc report` (live, from exports, from the CLESC file) and `clesc export` with a re-import round trip.

Each test uses its own pair of projects, so the other integration tests' projects are not touched.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from label_config import LabelRecord, labeling_config, to_result
from label_config.clesc import COLUMNS, POOL_COLUMNS, format_cell
from label_config.meta import PAIR_KEY, read_judge, with_judge
from label_config.schema import POOLS
from scripts.labelstudio.projects import ensure_project, ensure_user, import_folder
from scripts.pools.dataset import worker_email
from scripts.pools.sources import from_clesc, from_label_studio
from scripts.pools.sync import REFERENCE_MODEL_VERSION, Syncer, sync
from webhooks.settings import PROJECT_ROOT, Settings
from webhooks.store import Store

CLESC = str(PROJECT_ROOT / ".venv" / "bin" / "clesc")
PACES, PITCHES, VOLUMES = ("slow", "normal", "fast"), ("low", "medium", "high"), ("quiet", "medium", "loud")
EMOTIONS = ("sad", "happy", "angry", "calm", "hurt", "depressed", "gloomy", "astonished", "serene")
VOICES = ("husky", "shrill", "monotonous", "hoarse", "resonant")


def export_project(ls, project_id: int) -> list[dict]:
    """A project's standard LS JSON export, as the UI's Export button gives it."""
    response = requests.get(f"{ls._client_wrapper.get_base_url()}/api/projects/{project_id}/export",
                            params={"exportType": "JSON", "download_all_tasks": "true"},
                            headers=ls._client_wrapper.get_headers(), timeout=120)
    response.raise_for_status()
    return response.json()


def make_projects(ls, name: str) -> dict[str, int]:
    config = labeling_config()
    return {pool: ensure_project(ls, f"{pool.capitalize()} {name}", label_config=config, overlap=3,
                                 description=f"test {name}").id for pool in POOLS}


def clesc_cell(i: int, j: int, pool: str) -> str:
    """A deterministic annotation: clip i, annotator j (0..2) of a pool; experts agree more and use more words."""
    worker = f"{'e' if pool == 'expert' else 't'}{j + 1}"
    shift = 0 if (pool == "expert" and j < 2) or j == 0 else (i + j) % 3
    emotions = (EMOTIONS[i % 9], EMOTIONS[(i + 2) % 9]) if pool == "expert" else (EMOTIONS[(i + j * shift) % 9],)
    record = LabelRecord(PACES[(i + shift) % 3], PITCHES[(i // 2 + shift) % 3], VOLUMES[i % 3],
                         emotion=emotions, voice=(VOICES[i % 5],) if pool == "expert" or j == 1 else ())
    return format_cell(record, worker)


def clesc_rows(n: int) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        row = {"audio": f"https://media.example.org/clesc/clip{i:03d}.mp3",
               "source_dataset": "Common Voice" if i % 2 else "Voxceleb"}
        for pool in POOLS:
            for j, column in enumerate(POOL_COLUMNS[pool]):
                row[column] = clesc_cell(i, j, pool)
        rows.append(row)
    return rows


def write_csv(rows: list[dict[str, str]], path: Path, columns=COLUMNS) -> Path:
    import pandas as pd

    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def cli(ls_server, projects: dict[str, int], *args: str, home: Path, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "CLESC_HOME": str(home),
        "CLESC_LS_URL": ls_server.url,
        "CLESC_LS_TOKEN": ls_server.credentials.token,
        "CLESC_EXPERT_PROJECT": str(projects["expert"]),
        "CLESC_CROWD_PROJECT": str(projects["crowd"]),
        "CLESC_LS_DOCUMENT_ROOT": str(ls_server.document_root),
        **(env or {}),
    }
    done = subprocess.run([CLESC, *args], env=full_env, capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, f"clesc {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def all_tasks(ls, project: int) -> list:
    return list(ls.tasks.list(project=project, fields="all", page_size=100))


def annotations_by_clip(ls, project: int) -> dict[str, list[int]]:
    return {t.data["audio"]: sorted(a["completed_by"] for a in t.annotations or []) for t in all_tasks(ls, project)}


def figures(report: dict) -> dict:
    """The figures a round trip must keep: everything but where the data came from (the source, its LS
    projects and tasks, its times) and the run's settings."""
    out = {k: v for k, v in report.items()
           if k not in ("source", "settings", "generated_at", "data_as_of", "label_studio", "errors", "error_count")}
    out["comparison"] = {**out["comparison"], "per_clip": {
        **out["comparison"]["per_clip"],
        "rows": [{k: v for k, v in row.items() if k not in ("tasks", "links")} for row in out["comparison"]["per_clip"]["rows"]]}}
    return out


def assert_close(a, b, path: str = "report") -> None:
    """Equal structures, floats equal to 1e-9 relative."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: {len(a)} != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def assert_pairs_linked(ls, projects: dict[str, int], clips: int) -> None:
    tasks = {pool: {t.data["audio"]: t for t in all_tasks(ls, projects[pool])} for pool in POOLS}
    assert len(tasks["expert"]) == len(tasks["crowd"]) == clips
    assert set(tasks["expert"]) == set(tasks["crowd"])
    for audio, expert in tasks["expert"].items():
        crowd = tasks["crowd"][audio]
        assert expert.meta[PAIR_KEY]["task"] == crowd.id and expert.meta[PAIR_KEY]["project"] == projects["crowd"]
        assert crowd.meta[PAIR_KEY]["task"] == expert.id and crowd.meta[PAIR_KEY]["project"] == projects["expert"]


def test_clesc_import_judge_sync_report_export_round_trip(ls, ls_server, tmp_path):
    for i in range(10):  # user ids past 9, as in a full session: ls-10 sorts before ls-9 as text
        ensure_user(ls, f"padding{i}@example.com")
    projects = make_projects(ls, "clesc round trip")
    rows = clesc_rows(12)
    rows[2]["Expert_2"] = "{'pace': 'fast', 'pitch': "                        # a bad dict string
    rows[3]["Crowd_Worker_1"] = rows[3]["Crowd_Worker_1"].replace("'emotion': '", "'emotion': 'Mumbly, ")  # unknown word
    rows[4]["Crowd_Worker_3"] = ""                                             # a missing annotation
    rows[5]["Expert_3"] = rows[5]["Expert_3"].replace("'pace': '", "'pace': 'zippy")  # a value outside the schema
    source = write_csv(rows, tmp_path / "clesc.csv")
    home = tmp_path / "home"

    first = cli(ls_server, projects, "import", str(source), "--no-embeddings", home=home)
    assert "12 clips" in first.stdout and "expert: 12 tasks created" in first.stdout
    assert "row 3 (https://media.example.org/clesc/clip002.mp3) Expert_2: CLESC cell: not a Python dict literal" in first.stderr
    assert "row 6 (https://media.example.org/clesc/clip005.mp3) Expert_3: CLESC cell: pace 'zippy" in first.stderr
    assert_pairs_linked(ls, projects, 12)

    workers = {f"t{j}" for j in (1, 2, 3)} | {f"e{j}" for j in (1, 2, 3)}
    users = {u.email: u.id for u in ls.users.list()}
    assert {worker_email(w) for w in workers} <= set(users)
    by_clip = {pool: annotations_by_clip(ls, projects[pool]) for pool in POOLS}
    url = "https://media.example.org/clesc/clip{:03d}.mp3".format
    assert len(by_clip["expert"][url(2)]) == 2 and len(by_clip["expert"][url(5)]) == 2   # the bad cells, not the rows
    assert len(by_clip["crowd"][url(4)]) == 2 and len(by_clip["crowd"][url(3)]) == 3      # unknown word: kept
    mumbly = [a for t in all_tasks(ls, projects["crowd"]) if t.data["audio"] == url(3) for a in t.annotations
              if a["completed_by"] == users[worker_email("t1")]]
    assert any(r["from_name"] == "other" and "mumbly" in r["value"]["text"][0] for r in mumbly[0]["result"])
    assert sum(len(v) for v in by_clip["expert"].values()) == 34 and sum(len(v) for v in by_clip["crowd"].values()) == 35
    first_tasks = {pool: sorted(t.id for t in all_tasks(ls, projects[pool])) for pool in POOLS}

    again = cli(ls_server, projects, "import", str(source), "--no-embeddings", home=home)
    assert "expert: 0 tasks created, 12 already there, 0 annotations added" in again.stdout
    assert {pool: sorted(t.id for t in all_tasks(ls, projects[pool])) for pool in POOLS} == first_tasks
    assert {pool: annotations_by_clip(ls, projects[pool]) for pool in POOLS} == by_clip

    # Report from the live LS equals the report from the CLESC file (the same rules judge runs on both).
    live = cli(ls_server, projects, "report", "--out", str(tmp_path / "live"), "--no-embeddings", "--bootstrap", "100",
               home=home)
    assert "12 clips" in live.stdout
    live_report = json.loads((tmp_path / "live" / "report.json").read_text())
    cli(ls_server, projects, "report", "--clesc", str(source), "--out", str(tmp_path / "file"), "--no-embeddings",
        "--bootstrap", "100", home=home)
    file_report = json.loads((tmp_path / "file" / "report.json").read_text())
    assert figures(live_report) == figures(file_report)
    assert file_report["error_count"] == 2
    assert live_report["expert"]["annotations"] == 34 and live_report["crowd"]["annotations"] == 35
    assert (tmp_path / "live" / "report.html").stat().st_size > 10_000

    # Kappa and alpha against the reference libraries on the same labels.
    import krippendorff
    import numpy as np

    ds = from_label_studio(ls, projects)
    tasks = sorted({a.clip for a in ds.pool("crowd")})
    workers_ = sorted({a.worker for a in ds.pool("crowd")})
    codes = {v: i for i, v in enumerate(PACES)}
    matrix = np.full((len(workers_), len(tasks)), np.nan)
    for a in ds.pool("crowd"):
        matrix[workers_.index(a.worker), tasks.index(a.clip)] = codes[a.record.pace]
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert live_report["crowd"]["agreement"]["pace"]["krippendorff_alpha"] == pytest.approx(expected, abs=1e-9)

    # Judge every task with the real judge loop (what the worker's reconcile does), then sync.
    from webhooks.worker import JudgeLoop

    settings = Settings.from_env({"CLESC_HOME": str(home), "CLESC_LS_URL": ls_server.url,
                                  "CLESC_LS_TOKEN": ls_server.credentials.token})
    store = Store(settings.database_url)
    store.set_projects([(projects["expert"], "expert", "Expert x"), (projects["crowd"], "crowd", "Crowd x")])
    JudgeLoop(settings, store, ls).reconcile()
    judged = all_tasks(ls, projects["expert"])
    # The judge writes nothing for a task that is incomplete on first sight (clip002 and clip005 have 2 experts).
    assert [t.data["audio"] for t in judged if "clesc" not in t.meta] == [url(2), url(5)]

    def status_of(task) -> str:
        return (task.meta.get("clesc") or {}).get("status", "incomplete")

    synced = cli(ls_server, projects, "sync", "--reference", home=home)
    assert "full sync" in synced.stdout
    tasks = {pool: {t.data["audio"]: t for t in all_tasks(ls, projects[pool])} for pool in POOLS}
    accepted = 0
    for audio, crowd in tasks["crowd"].items():
        expert = tasks["expert"][audio]
        assert crowd.meta[PAIR_KEY]["status"] == status_of(expert)
        assert expert.meta[PAIR_KEY]["status"] == status_of(crowd)
        if "clesc" in expert.meta:
            assert crowd.meta[PAIR_KEY]["consensus"] == expert.meta["clesc"]["consensus"]
            assert crowd.meta[PAIR_KEY]["judged_by"] == "judge"
        refs = [p for p in ls.predictions.list(task=crowd.id) if p.model_version == REFERENCE_MODEL_VERSION]
        if status_of(expert) == "accepted":
            accepted += 1
            assert len(refs) == 1
            assert {r["from_name"]: r["value"].get("choices") for r in refs[0].result}["pace"] == \
                [expert.meta["clesc"]["consensus"]["pace"]]
        else:
            assert refs == []
    assert accepted > 0
    second = cli(ls_server, projects, "sync", "--reference", home=home)
    assert "incremental sync" in second.stdout and " 0 task metas updated" in second.stdout \
        and "0 reference predictions written" in second.stdout

    # Export (all annotations, the judge's rejections too) and import into fresh projects: same figures.
    out = tmp_path / "export.csv"
    exported = cli(ls_server, projects, "export", "--format", "clesc", "--all", "--out", str(out), home=home)
    assert "12 clips, 69 annotations" in exported.stdout
    accepted_only = cli(ls_server, projects, "export", "--format", "parquet", "--out", str(tmp_path / "acc.parquet"),
                        home=home)
    rejected = sum(len(t.meta.get("clesc", {}).get("rejected", [])) for pool in POOLS for t in all_tasks(ls, projects[pool]))
    assert f"{rejected} rejected annotations left out" in accepted_only.stdout or rejected == 0
    assert len(from_clesc(tmp_path / "acc.parquet").annotations) == 69 - rejected
    again_projects = make_projects(ls, "clesc re-import")
    cli(ls_server, again_projects, "import", str(out), "--no-embeddings", home=home)
    cli(ls_server, again_projects, "report", "--out", str(tmp_path / "again"), "--no-embeddings", "--bootstrap", "100",
        home=home)
    again_report = json.loads((tmp_path / "again" / "report.json").read_text())
    assert figures(again_report) == figures(file_report)

    # JSONL: consensus, verdicts and every annotation per clip.
    cli(ls_server, projects, "export", "--format", "jsonl", "--all", "--out", str(tmp_path / "rich.jsonl"), home=home)
    lines = [json.loads(line) for line in (tmp_path / "rich.jsonl").read_text().splitlines()]
    assert len(lines) == 12
    clip = next(r for r in lines if r["audio"] == url(3))
    assert clip["crowd"]["status"] == status_of(tasks["crowd"][url(3)])
    assert clip["expert"]["consensus"] == tasks["expert"][url(3)].meta["clesc"]["consensus"]
    assert "mumbly" in next(a for a in clip["crowd"]["annotations"] if a["worker"] == "t1")["other"]
    unjudged = {(r["audio"], pool) for r in lines for pool in POOLS for a in r[pool]["annotations"] if a["verdict"] is None}
    assert unjudged == {(url(2), "expert"), (url(5), "expert"), (url(4), "crowd")}  # incomplete: nothing written
    assert {a["verdict"] for r in lines for pool in POOLS for a in r[pool]["annotations"]} == {"accept", "reject", None}

    # Reports from the two projects' standard LS exports give the live figures (after the judge ran).
    for pool in POOLS:
        (tmp_path / f"{pool}.json").write_text(json.dumps(export_project(ls, projects[pool])))
    cli(ls_server, projects, "report", "--out", str(tmp_path / "live2"), "--no-embeddings", "--bootstrap", "100",
        home=home)
    cli(ls_server, projects, "report", "--expert-export", str(tmp_path / "expert.json"), "--crowd-export",
        str(tmp_path / "crowd.json"), "--out", str(tmp_path / "exports"), "--no-embeddings", "--bootstrap", "100",
        home=home)
    live2 = json.loads((tmp_path / "live2" / "report.json").read_text())
    from_exports = json.loads((tmp_path / "exports" / "report.json").read_text())
    # An LS export has user ids, not e-mails: its annotators are named ls-<id> rather than t1, e2, ...
    users_by_id = {u.id: u.email.split("@")[0] for u in ls.users.list()}
    for pool in POOLS:
        for row in from_exports[pool]["workers"] + from_exports[pool]["judge"]["by_annotator"]:
            row["worker"] = users_by_id[int(row["worker"].removeprefix("ls-"))]
        for report in (from_exports, live2):  # rows with equal figures are ordered by name, which differs
            report[pool]["workers"].sort(key=lambda row: row["worker"])
            report[pool]["judge"]["by_annotator"].sort(key=lambda row: row["worker"])
    # Annotators are coded in name order, so EM sums (Dawid-Skene) may differ in the last bits.
    assert_close(figures(from_exports), figures(live2))
    assert live2["expert"]["judge"]["source"] == "label-studio"

    # What only the live LS tells: its projects and links to the tasks, the data's times, the ops decisions
    # in a task's meta (written here as the worker will write them), also for an annotation LS lists no more.
    assert live2["label_studio"] == {"url": ls_server.url, "projects": projects}
    row = live2["comparison"]["per_clip"]["rows"][0]
    assert row["links"]["crowd"] == f"{ls_server.url}/projects/{projects['crowd']}/data?task={row['tasks']['crowd']}"
    assert from_exports["label_studio"] is None and from_exports["data_as_of"] == live2["data_as_of"] is not None
    task = next(t for t in all_tasks(ls, projects["crowd"]) if "clesc" in t.meta)
    present = task.annotations[0]["id"]
    decided = [{"annotation_id": present, "decision": "overturn", "reasons": ["emotion_outlier"], "decided_by": 1,
                "decided_at": "2030-01-01T00:00:00+00:00", "comment": "", "version": "test"},
               {"annotation_id": 10**9, "decision": "uphold", "reasons": ["contradiction"], "decided_by": 1,
                "decided_at": "2030-01-01T00:01:00+00:00", "comment": "", "version": "test"}]
    ls.tasks.update(task.id, meta=with_judge(task.meta, replace(read_judge(task.meta), decisions=tuple(decided))))
    cli(ls_server, projects, "report", "--out", str(tmp_path / "live3"), "--no-embeddings", "--bootstrap", "0", home=home)
    live3 = json.loads((tmp_path / "live3" / "report.json").read_text())
    decisions = live3["crowd"]["judge"]["decisions"]
    assert (decisions["upheld"], decisions["overturned"], decisions["upheld_not_in_data"]) == (1, 1, 1)
    assert live3["crowd"]["judge"]["annotations_judged"] == live2["crowd"]["judge"]["annotations_judged"] + 1
    assert live3["data_as_of"] == "2030-01-01T00:01:00+00:00"


def test_manifest_and_folder_imports_are_idempotent_and_linked(ls, ls_server, clips_dir, tmp_path):
    projects = make_projects(ls, "manifest")
    manifest = tmp_path / "clips.jsonl"
    lines = [{"audio": f"https://media.example.org/m/{i}.wav", "source_dataset": "Voxceleb", "speaker": f"id{i % 3}",
              "gender": "female" if i % 2 else "male"} for i in range(5)]
    lines.insert(2, {"speaker": "nobody"})                                    # no audio
    lines.insert(4, {"audio": "ftp://media.example.org/x.wav"})              # not http(s)
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    home = tmp_path / "home"
    done = cli(ls_server, projects, "import", str(manifest), home=home)
    assert "row 3: no audio URL" in done.stderr and "row 5: audio 'ftp://media.example.org/x.wav'" in done.stderr
    assert_pairs_linked(ls, projects, 5)
    task = next(t for t in all_tasks(ls, projects["crowd"]) if t.data["audio"].endswith("/3.wav"))
    assert task.data == {"audio": "https://media.example.org/m/3.wav", "source_dataset": "Voxceleb",
                         "speaker": "id0", "gender": "female"}
    cli(ls_server, projects, "import", str(manifest), home=home)
    assert_pairs_linked(ls, projects, 5)

    # A folder: the Expert project first gets the clips from an LS storage sync (what `clesc setup` does);
    # `clesc import` of the same folder recognises them, creates only the Crowd tasks, and LS serves the audio.
    folder_projects = make_projects(ls, "folder")
    import_folder(ls, folder_projects["expert"], clips_dir)
    out = cli(ls_server, folder_projects, "import", str(clips_dir), home=home)
    n = len(list(clips_dir.glob("*.wav")))
    assert f"expert: 0 tasks created, {n} already there" in out.stdout and f"crowd: {n} tasks created" in out.stdout
    assert_pairs_linked(ls, folder_projects, n)
    audio = all_tasks(ls, folder_projects["crowd"])[0].data["audio"]
    got = requests.get(ls_server.url + audio, headers={"Authorization": f"Token {ls_server.credentials.token}"}, timeout=30)
    assert got.status_code == 200 and got.content[:4] == b"RIFF"
    outside = cli(ls_server, folder_projects, "import", str(tmp_path), home=home, check=False)
    assert outside.returncode == 2 and "not under Label Studio's local-files document root" in outside.stderr


class Interrupt(KeyboardInterrupt):
    """What Ctrl-C raises, injected after a number of calls to one LS endpoint."""


class InterruptAfter:
    """The real SDK client, except that the n-th call to one method raises Interrupt (Ctrl-C mid-sync)."""

    def __init__(self, client, path: str, calls: int):
        self._client, self._path, self._left = client, path, calls

    def __getattr__(self, name):
        target = getattr(self._client, name)
        section, method = self._path.split(".")
        if name != section:
            return target
        outer = self

        class Section:
            def __getattr__(self, attr):
                real = getattr(target, attr)
                if attr != method:
                    return real

                def call(*args, **kwargs):
                    outer._left -= 1
                    if outer._left < 0:
                        raise Interrupt()
                    return real(*args, **kwargs)
                return call
        return Section()


def test_sync_interrupted_mid_way_then_rerun_leaves_no_duplicates_and_nothing_missing(ls, ls_server, tmp_path):
    projects = make_projects(ls, "interrupted sync")
    manifest = tmp_path / "clips.csv"
    manifest.write_text("audio,speaker\n" + "".join(f"https://media.example.org/s/{i}.mp3,sp{i}\n" for i in range(23)))
    home = tmp_path / "home"
    cli(ls_server, projects, "import", str(manifest), "--pool", "expert", home=home)
    assert len(all_tasks(ls, projects["crowd"])) == 0
    # Crowd-only clips too: sync goes both ways.
    ls.projects.import_tasks(projects["crowd"], request=[{"data": {"audio": f"https://media.example.org/c/{i}.mp3"}}
                                                         for i in range(3)])
    store = Store(f"sqlite:///{home / 'sync.db'}")
    monkey_batch = 5
    import scripts.pools.sync as sync_module

    original = sync_module.BATCH
    sync_module.BATCH = monkey_batch
    try:
        with pytest.raises(Interrupt):  # during task creation: the Expert batch and 1 of 5 Crowd batches made
            sync(InterruptAfter(ls, "projects.import_tasks", 2), projects, store)
        assert len(all_tasks(ls, projects["expert"])) == 23 + 3
        assert len(all_tasks(ls, projects["crowd"])) == 3 + monkey_batch
        assert store.last_sync(projects["expert"], projects["crowd"]) is None
        with pytest.raises(Interrupt):  # during linking
            sync(InterruptAfter(ls, "tasks.update", 7), projects, store)
        report = sync(ls, projects, store, margin=timedelta(0))
    finally:
        sync_module.BATCH = original
    assert report.full
    assert_pairs_linked(ls, projects, 26)
    for pool in POOLS:
        audios = [t.data["audio"] for t in all_tasks(ls, projects[pool])]
        assert len(audios) == len(set(audios)) == 26
    assert store.last_sync(projects["expert"], projects["crowd"]) is not None

    # Incremental: the run after reads back what the last one wrote and changes nothing; then one new
    # annotation in Expert: only that task is read, and only its pair's metas are re-written.
    quiet = sync(ls, projects, store, margin=timedelta(0))
    assert not quiet.full and quiet.updated == 0 and quiet.created == {"expert": 0, "crowd": 0}
    user = ensure_user(ls, "sync-annotator@example.com")
    expert_task = all_tasks(ls, projects["expert"])[0]
    ls.annotations.create(id=expert_task.id, result=to_result(LabelRecord("fast", "high", "loud", emotion=("angry",))),
                          completed_by=user)
    later = sync(ls, projects, store, margin=timedelta(0))
    assert later.read == {"expert": 1, "crowd": 0} and later.updated == 1
    crowd_task = ls.tasks.get(expert_task.meta[PAIR_KEY]["task"])
    assert crowd_task.meta[PAIR_KEY]["annotations"] == 1
    idle = Syncer(ls, projects).run(since=None)
    assert idle.updated == 0 and idle.created == {"expert": 0, "crowd": 0}
