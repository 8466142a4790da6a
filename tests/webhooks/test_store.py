"""The store's annotator skills (real SQLite): incremental, exact, surviving restarts and ops decisions."""

from __future__ import annotations

import threading
import time

import pytest

from webhooks.judge.reliability import Evidence, Skill
from webhooks.store import Store, TaskBusy, TaskLease

SPAM = Evidence(1.0, 0.95, (0.05,) * 3, (0.01,) * 3, 0.0)
HONEST = Evidence(1.0, 0.02, (0.98,) * 3, (0.9,) * 3, 0.0)


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'clesc.db'}")


def _close(a: Skill, b: Skill) -> bool:
    ea, eb = a.evidence, b.evidence
    return all(abs(x - y) < 1e-9 for x, y in zip((ea.annotations, ea.random, *ea.weight, *ea.agree, ea.defects),
                                                    (eb.annotations, eb.random, *eb.weight, *eb.agree, eb.defects)))


def test_skills_are_the_sum_of_the_current_evidence(store):
    store.record_evidence(1, 10, [(100, 7, SPAM, 0.9), (101, 8, HONEST, 0.0)], live={100, 101})
    store.record_evidence(1, 11, [(102, 7, SPAM, 0.9)], live={102})
    skills = store.skills(1, [7, 8, 9])
    assert _close(skills[7], Skill() + SPAM + SPAM) and _close(skills[8], Skill() + HONEST)
    assert skills[9] == Skill()  # never judged: the prior
    # the same task judged again with other evidence replaces, never adds twice
    store.record_evidence(1, 10, [(100, 7, HONEST, 0.0), (101, 8, HONEST, 0.0)], live={100, 101})
    store.record_evidence(1, 10, [(100, 7, HONEST, 0.0), (101, 8, HONEST, 0.0)], live={100, 101})
    assert _close(store.skills(1, [7])[7], Skill() + SPAM + HONEST)
    assert store.skills(2, [7])[7] == Skill()  # skills are per project


def test_an_annotation_that_disappears_stops_counting_unless_ops_decided_on_it(store):
    store.record_evidence(1, 10, [(100, 7, SPAM, 0.9), (101, 7, SPAM, 0.9)], live={100, 101})
    store.decide_evidence(1, 100, "uphold", random=True)
    store.record_evidence(1, 10, [], live=set())  # both cancelled (the upheld one by the service itself)
    skill = store.skills(1, [7])[7]
    assert skill.annotations == 1 and skill.evidence.random == pytest.approx(1.0)  # the decision stays


def test_ops_decisions_move_the_annotators_skill(store):
    store.record_evidence(1, 10, [(100, 7, Evidence(1.0, 0.6, (0.4,) * 3, (0.2,) * 3, 0.0), 0.6)], live={100})
    before = store.skills(1, [7])[7].random_rate
    store.decide_evidence(1, 100, "overturn", random=True)
    overturned = store.skills(1, [7])[7].random_rate
    store.decide_evidence(1, 100, "uphold", random=True)
    upheld = store.skills(1, [7])[7].random_rate
    assert overturned < before < upheld
    # a rejection for a contradiction says nothing about randomness when upheld
    store.record_evidence(1, 11, [(110, 8, HONEST, 0.99)], live={110})
    store.decide_evidence(1, 110, "uphold", random=False)
    assert _close(store.skills(1, [8])[8], Skill() + HONEST)
    # the judge's later guesses do not undo a decision
    store.record_evidence(1, 10, [(100, 7, HONEST, 0.0)], live={100})
    assert store.skills(1, [7])[7].random_rate == pytest.approx(upheld)


def test_skills_survive_a_restart(tmp_path):
    url = f"sqlite:///{tmp_path / 'clesc.db'}"
    first = Store(url)
    for i in range(30):
        first.record_evidence(1, i, [(1000 + i, 7, SPAM, 0.95)], live={1000 + i})
    flagged = first.skills(1, [7])[7]
    assert flagged.flagged
    first.engine.dispose()
    again = Store(url).skills(1, [7])[7]
    assert again == flagged and again.flagged


def test_moved_skills_name_the_tasks_to_judge_again(store):
    moved = []
    for i in range(30):
        moved.append(store.record_evidence(1, i, [(1000 + i, 7, SPAM, 0.5 if i % 2 else 0.97)], live={1000 + i}))
    assert {"skill", "flag"} <= {how for m in moved for how in m.values()}
    assert sum(bool(m) for m in moved) < 8  # only when it moved: not after every annotation
    assert store.tasks_to_rejudge(1, 7, "flag", 0.1, 0.9) == list(range(30))
    assert store.tasks_to_rejudge(1, 7, "skill", 0.1, 0.9) == list(range(1, 30, 2))  # the borderline ones


def test_concurrent_updates_lose_nothing(store):
    def judge(start):
        for i in range(start, start + 25):
            store.record_evidence(1, i, [(5000 + i, 7, HONEST, 0.0)], live={5000 + i})

    threads = [threading.Thread(target=judge, args=(k * 25,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.skills(1, [7])[7].annotations == 100


def test_two_jobs_that_each_made_a_review_task_converge_on_the_oldest(store):
    """Two jobs for one task ran at once and each created a review task in LS (the worker keeps the oldest
    there): whichever records first, the store ends on the oldest, and a decided review is left alone."""
    store.add_review("7:42:v1", 11, 7, 3, 42)
    store.add_review("7:42:v1", 10, 7, 3, 42)
    store.add_review("7:42:v1", 12, 7, 3, 42)
    assert store.review("7:42:v1")["review_task_id"] == 10
    store.decide_review(10, "uphold")
    store.add_review("7:42:v1", 9, 7, 3, 42)
    assert store.review("7:42:v1")["review_task_id"] == 10 and store.review("7:42:v1")["decision"] == "uphold"


def test_a_task_lease_has_one_holder_until_released_or_run_out(store):
    assert store.take_lease(7, 3, "worker-a", 30)
    assert not store.take_lease(7, 3, "worker-b", 30)  # held
    assert store.take_lease(7, 4, "worker-b", 30)  # another task
    assert store.renew_lease(7, 3, "worker-a", 30) and not store.renew_lease(7, 3, "worker-b", 30)
    store.release_lease(7, 3, "worker-b")  # not the holder: nothing happens
    assert not store.take_lease(7, 3, "worker-b", 30)
    store.release_lease(7, 3, "worker-a")
    assert store.take_lease(7, 3, "worker-b", 0.2)
    time.sleep(0.3)  # worker-b was killed: its lease runs out, nobody had to free it
    assert store.take_lease(7, 3, "worker-c", 30)
    assert not store.renew_lease(7, 3, "worker-b", 30)  # worker-b's stalled job learns it lost the task


def test_racing_jobs_take_a_lease_once(store):
    won, barrier = [], threading.Barrier(8)

    def take(n: int) -> None:
        barrier.wait()
        if store.take_lease(1, 1, f"job-{n}", 30):
            won.append(n)

    threads = [threading.Thread(target=take, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_the_synchronous_path_waits_for_a_running_job_and_gives_up_with_a_clear_error(store):
    """`clesc reconcile` judging while workers run: its lease waits for the worker's job on the task to end."""
    job = TaskLease(store, 7, 3, ttl_s=30).__enter__()
    threading.Timer(0.5, job.__exit__, args=(None, None, None)).start()
    started = time.monotonic()
    with TaskLease(store, 7, 3, ttl_s=30, wait_s=10):
        assert time.monotonic() - started >= 0.4
    with TaskLease(store, 7, 3, ttl_s=30):
        with pytest.raises(TaskBusy, match="project 7 task 3 is being judged by another job"):
            TaskLease(store, 7, 3, ttl_s=30, wait_s=0.3).__enter__()
