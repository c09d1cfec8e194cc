"""The batch without Ray, as a user runs it: kill -9 in the middle of a row, run the same command again, and it
finishes: the rows done before are reported as skipped (not redone), the rest are done, the photo without a face is
reported with its error, the speech two rows share is sampled once, and no partial file is left."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from batch_support import (
    batch_command,
    batch_env,
    expected_frames,
    partial_files,
    probe,
    read_report,
    run_batch,
    write_batch_folder,
)

MANIFEST = """{"image": "face1.png", "audio": "b.wav", "out": "first.mp4"}
{"image": "face2.png", "audio": "a.wav", "out": "clips/second.mp4", "seed": 11}
{"image": "face3.jpg", "audio": "a.wav", "out": "clips/third.mp4", "seed": 11}
{"image": "noface.png", "audio": "c.wav", "out": "noface.mp4"}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = write_batch_folder(tmp_path_factory.mktemp("local_batch"))
    (root / "rows.jsonl").write_text(MANIFEST, encoding="utf-8")
    return root


def wait_for(condition, what: str, batch: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert batch.poll() is None, f"the batch ended before {what}: {batch.stderr.read()}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)


def test_kill_9_mid_batch_then_rerun_finishes(folder):
    out = folder / "videos"
    report = out / "rows.report.jsonl"
    batch = subprocess.Popen(batch_command(folder / "rows.jsonl", out, folder / "models"), env=batch_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: report.exists() and report.read_text(encoding="utf-8").count("\n") == 1, "first row", batch)
        wait_for(lambda: partial_files(out), "partial file of the second row", batch)
        os.kill(batch.pid, signal.SIGKILL)
    finally:
        batch.kill()
        batch.wait()
    assert batch.returncode == -signal.SIGKILL
    assert [p.name.split(".joyvasa-partial")[0] for p in partial_files(out)] == [".second"]
    assert not (out / "clips" / "second.mp4").exists() and (out / "first.mp4").is_file()
    first_done = read_report(report)
    assert [(r["row"], r["status"]) for r in first_done] == [(1, "done")]

    again = run_batch(folder / "rows.jsonl", out, folder / "models", "--verbose")
    assert again.returncode == 1, again.stderr  # the photo without a face
    rows = {r["row"]: r for r in read_report(report)}
    assert {n: r["status"] for n, r in rows.items()} == {1: "skipped", 2: "done", 3: "done", 4: "failed"}
    assert rows[1]["frames"] == first_done[0]["frames"] and "seconds" in rows[1]
    assert "no face found" in rows[4]["error"] and rows[4]["out"] == str(out / "noface.mp4")
    assert (rows[2]["motion"], rows[3]["motion"]) == ("sampled", "reused"), "the shared speech sampled once"
    for number, speech in ((1, "b.wav"), (2, "a.wav"), (3, "a.wav")):
        frames, sound = probe(Path(rows[number]["out"]))
        assert frames == rows[number]["frames"] == expected_frames(folder / speech)
        assert abs(sound - frames / 25) < 0.1
    assert partial_files(out) == [], "the killed run's partial file is gone"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.mp4")) == ["clips/second.mp4", "clips/third.mp4",
                                                                          "first.mp4"]
    err = again.stderr
    assert "row 1: " in err and "already complete, skipped" in err and "row 4: failed: " in err
    assert "4/4" in err and "failed 1" in err, "the batch's progress bar"
    assert "batch: 2 done, 1 skipped, 1 failed of 4 rows" in err


def test_quiet_prints_nothing_for_a_finished_batch(folder):
    """--quiet: no bar and no row lines; a batch whose every row is complete exits 0 without loading a model."""
    import numpy as np

    from joyvasa_core.video import VideoWriter

    out = folder / "quiet"
    out.mkdir()
    with VideoWriter(out / "done.mp4", fps=25) as writer:
        writer.write(np.zeros((3, 64, 64, 3), np.uint8))
    manifest = folder / "done.jsonl"
    manifest.write_text('{"image": "face1.png", "audio": "b.wav", "out": "done.mp4"}\n', encoding="utf-8")
    result = run_batch(manifest, out, folder / "models")
    assert result.returncode == 0 and result.stderr == ""
    assert [(r["status"], r["frames"]) for r in read_report(out / "done.report.jsonl")] == [("skipped", 3)]
