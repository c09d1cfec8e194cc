"""The batch on a real Ray cluster started here on 127.0.0.1: a head node without CPUs and two worker nodes of one
CPU each, so each row runs on one of two actors (each holding its own loaded small networks). Six rows, one photo
without a face, two rows sharing one speech; one actor's process is SIGKILLed (by PID) in the middle of a row.

One cluster for the module; the rows are 0.4-0.5 s of speech. Loopback only: Ray normally advertises the machine's
address, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps every node, and the batch's driver, on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from batch_support import (
    batch_command,
    batch_env,
    expected_frames,
    partial_files,
    probe,
    read_report,
    write_batch_folder,
)

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before ray is imported: nodes on 127.0.0.1

import ray  # noqa: E402  (requirements-ray.txt; scripts/test.sh installs it)
from ray.cluster_utils import Cluster  # noqa: E402

MANIFEST = """image,audio,out,seed
face1.png,a.wav,shared_1.mp4,7
face2.png,a.wav,shared_2.mp4,7
noface.png,b.wav,noface.mp4,
face3.jpg,b.wav,third.mp4,3
face1.png,c.wav,fourth.mp4,
face2.png,b.wav,fifth,5
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False  # in case ray was imported before the variable was set
    c = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(2):
            c.add_node(num_cpus=1)
        c.wait_for_nodes()
        assert c.address.startswith("127.0.0.1:")
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = write_batch_folder(tmp_path_factory.mktemp("ray_batch"))
    (root / "rows.csv").write_text(MANIFEST, encoding="utf-8")
    return root


def actor_processes() -> list[psutil.Process]:
    """The processes of this batch's Ray actors (Ray names them ``ray::RayWorker``; ``.run`` while on a row)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if cmd.startswith("ray::RayWorker"):
            found.append(p)
    return found


def kill_one_actor_mid_row(batch: subprocess.Popen, report: Path, timeout: float = 600) -> int:
    """SIGKILL the process of an actor that is running a row, once at least one row has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and batch.poll() is None:
        finished = report.exists() and report.read_text(encoding="utf-8").count("\n") >= 1
        busy = [p for p in actor_processes() if ".run" in " ".join(p.cmdline())] if finished else []
        if busy:
            os.kill(busy[0].pid, signal.SIGKILL)
            return busy[0].pid
        time.sleep(0.2)
    ended = "" if batch.poll() is None else f"the batch ended ({batch.returncode}): {batch.stderr.read()[-2000:]}"
    raise AssertionError(f"no actor was running a row to kill; {ended}")


def test_ray_batch_survives_a_killed_worker(cluster, folder):
    out = folder / "videos"
    t0 = time.monotonic()
    batch = subprocess.Popen(batch_command(folder / "rows.csv", out, folder / "models", "--ray", cluster.address,
                                           "--cpus-per-worker", "1", "--retries", "2"),
                             env=batch_env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    killed = kill_one_actor_mid_row(batch, out / "rows.report.jsonl")
    _, err = batch.communicate(timeout=900)
    seconds = time.monotonic() - t0
    assert batch.returncode == 1, err  # one row has no face
    assert not psutil.pid_exists(killed)

    rows = read_report(out / "rows.report.jsonl")
    assert sorted(r["row"] for r in rows) == [1, 2, 3, 4, 5, 6], "each row reported exactly once"
    by_row = {r["row"]: r for r in rows}
    assert by_row[3]["status"] == "failed" and "no face" in by_row[3]["error"]
    speech = {1: "a", 2: "a", 4: "b", 5: "c", 6: "b"}
    for number, name in speech.items():
        row = by_row[number]
        assert row["status"] == "done", row
        frames, sound = probe(Path(row["out"]))
        assert frames == row["frames"] == expected_frames(folder / f"{name}.wav")
        assert abs(sound - frames / 25) < 0.1, (row, sound)
    assert sum(r.get("attempts", 1) for r in rows) == 7, "the killed actor's row ran again, once"
    assert sorted(by_row[n]["motion"] for n in (1, 2)) == ["reused", "sampled"], "the shared speech sampled once"
    assert len({r["worker"] for r in rows}) >= 2, "the rows were spread over both actors"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["shared_1.mp4", "shared_2.mp4", "third.mp4", "fourth.mp4", "fifth.mp4",
                            "rows.report.jsonl"])
    assert by_row[6]["out"] == str(out / "fifth.mp4"), "a name without extension gets .mp4, as on the command line"
    assert partial_files(out) == []
    print(f"ray batch of 6 rows with one actor killed: {seconds:.1f} s")
