"""Many videos: one batch against one command per video, and the batch on Ray with 1 against 2 workers.

Small networks (the tests' models folder), one speech on several faces (the fixture photo, mirrored and framed
differently), side by side in one run; prints figures and ratios, never asserts timings.

    python bench/bench_batch.py                     # 4 rows of 1 s of speech
    python bench/bench_batch.py --rows 6 --seconds 0.4 --no-ray
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from fixture_support import fixture_path  # noqa: E402
from model_folders import write_joyvasa, write_liveportrait  # noqa: E402

from joyvasa_core.job import load_job_models, plan_job  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def inputs(root: Path, rows: int, seconds: float) -> Path:
    """The models folder, one speech, ``rows`` faces and the manifest; returns the manifest."""
    write_liveportrait(root / "models", "official")
    write_joyvasa(root / "models")
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="int16")
    sf.write(str(root / "speech.wav"), wave[: int(seconds * rate)], rate, subtype="PCM_16")
    photo = cv2.imread(str(fixture_path("astronaut.png")))
    lines = ["image,audio,out,seed"]
    for i in range(rows):
        face = cv2.flip(photo, 1) if i % 2 else photo
        face = cv2.copyMakeBorder(face, 0, 0, 8 * (i // 2), 8 * (i // 2), cv2.BORDER_REFLECT)
        cv2.imwrite(str(root / f"face{i}.png"), face)
        lines.append(f"face{i}.png,speech.wav,clip{i}.mp4,1")
    (root / "rows.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "rows.csv"


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=ENV, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def single_jobs(root: Path, rows: int) -> float:
    out = root / "single"
    out.mkdir()
    return sum(timed([sys.executable, "-m", "joyvasa_core", "--image", str(root / f"face{i}.png"), "--audio",
                      str(root / "speech.wav"), "--out", str(out / f"clip{i}.mp4"), "--seed", "1", "--models",
                      str(root / "models"), "--no-download", "--device", "cpu", "--quiet"]) for i in range(rows))


def batch(root: Path, name: str, *extra: str) -> tuple[float, list[dict]]:
    out = root / name
    seconds = timed([sys.executable, "-m", "joyvasa_core", "batch", str(root / "rows.csv"), "--out-dir", str(out),
                     "--models", str(root / "models"), "--no-download", "--device", "cpu", "--quiet", *extra])
    report = [json.loads(line) for line in (out / "rows.report.jsonl").read_text().splitlines()]
    assert all(r["status"] == "done" for r in report), report
    return seconds, report


def model_load_seconds(root: Path) -> float:
    plan = plan_job({"image": str(root / "face0.png"), "audio": str(root / "speech.wav"), "out": "x.mp4",
                     "models": str(root / "models"), "download": False, "device": "cpu"})
    t0 = time.perf_counter()
    load_job_models(plan)
    return time.perf_counter() - t0


def ray_runs(root: Path) -> dict[int, float]:
    """The batch on a local Ray cluster of one node with 2 CPUs: 1 worker against 2 (one CPU each)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        return {n: batch(root, f"ray{n}", "--ray", cluster.address, "--workers", str(n), "--cpus-per-worker", "1")[0]
                for n in (1, 2)}
    finally:
        cluster.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--seconds", type=float, default=1.0, help="seconds of speech per row")
    p.add_argument("--no-ray", action="store_true")
    a = p.parse_args()
    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"{a.rows} rows of {a.seconds} s of speech on {a.rows} faces, small networks, OMP_NUM_THREADS=2")
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        root = Path(tmp)
        inputs(root, a.rows, a.seconds)
        load = model_load_seconds(root)
        singles = single_jobs(root, a.rows)
        together, report = batch(root, "batch")
        sampled = sum(r.get("motion") == "sampled" for r in report)
        print(f"{a.rows} single-job runs: {singles:7.1f} s ({singles / a.rows:.1f} s a video)")
        print(f"one batch of {a.rows} rows: {together:7.1f} s ({together / a.rows:.1f} s a video); "
              f"{singles / together:.2f}x faster; motion sampled {sampled} time(s)")
        print(f"model load: {load:.1f} s in-process; the batch loads once, {a.rows - 1} loads saved "
              f"(~{(a.rows - 1) * load:.1f} s), the rest is process start-up and the motion sampled once")
        if not a.no_ray:
            ray = ray_runs(root)
            print(f"Ray, 1 worker: {ray[1]:7.1f} s; 2 workers: {ray[2]:7.1f} s; {ray[1] / ray[2]:.2f}x "
                  "(each run includes connecting and loading the models in each actor)")


if __name__ == "__main__":
    main()
