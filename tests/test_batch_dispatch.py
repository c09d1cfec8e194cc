"""The Ray driver's bookkeeping without a cluster: rows of one speech wait for the row sampling its motion, then go
anywhere with it; a row whose actor died goes back to the front, a bounded number of times."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from joyvasa_core.batch.ray_runner import ActorShape, Dispatcher, RayOptions, actor_shape
from joyvasa_core.batch.rows import Row


def rows(*groups: str | None) -> tuple[list[Row], dict[int, str | None]]:
    made = [Row(n, {}, {"out": Path(f"/v/{n}.mp4")}) for n in range(1, len(groups) + 1)]
    return made, {r.number: g for r, g in zip(made, groups, strict=True)}


def test_rows_of_one_speech_wait_for_its_motion():
    todo, groups = rows("a", "a", None, "a")
    plan = Dispatcher(deque(todo), groups, retries=1)
    first = plan.next_row()
    assert first.number == 1 and plan.owners == {"a": 1}
    assert plan.next_row().number == 3, "row 2 waits for row 1's motion; row 3 has no speech group"
    assert plan.next_row() is None
    plan.release(first, "key-a", "motion-ref")
    assert plan.motions == {"a": ("key-a", "motion-ref")} and plan.owners == {}
    assert [plan.next_row().number, plan.next_row().number] == [2, 4]


def test_a_failed_owner_hands_the_speech_to_the_next_row():
    todo, groups = rows("a", "a")
    plan = Dispatcher(deque(todo), groups, retries=1)
    first = plan.next_row()
    plan.release(first, None, None)  # no face: failed before sampling
    second = plan.next_row()
    assert second.number == 2 and plan.owners == {"a": 2}


def test_retries_are_bounded():
    todo, groups = rows(None, None)
    plan = Dispatcher(deque(todo), groups, retries=2)
    row = plan.next_row()
    assert plan.retry(row) and plan.next_row() is row and plan.attempts[1] == 2
    assert plan.retry(row) and plan.next_row() is row and plan.attempts[1] == 3
    assert not plan.retry(row), "a third death: the row fails"
    assert plan.next_row().number == 2


def test_actor_shape():
    cpu = RayOptions(cpus_per_worker=4)
    assert actor_shape({"CPU": 16.0}, cpu, rows=100) == ActorShape(4, 4.0, 0.0, "cpu")
    assert actor_shape({"CPU": 16.0}, cpu, rows=3).count == 3, "never more actors than rows"
    assert actor_shape({"CPU": 2.0}, cpu, rows=9) == ActorShape(1, 2.0, 0.0, "cpu"), "a small node: one actor"
    assert actor_shape({"CPU": 32.0, "GPU": 2.0}, cpu, rows=9) == ActorShape(2, 1.0, 1.0, "cuda")
    assert actor_shape({"CPU": 32.0, "GPU": 2.0}, RayOptions(device="cpu"), rows=9).device == "cpu"
    assert actor_shape({"CPU": 8.0}, RayOptions(workers=1, cpus_per_worker=2), rows=9).count == 1
