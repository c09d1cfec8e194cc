"""Motion generation speed and memory: reference 50-step DDPM vs the fast DDIM sampler, shipped config.

Weights are the fixture fill rule's random ones (same cost as the real checkpoint); audio is the bundled English
speech, tiled to the requested length. Prints figures only.

    python bench/bench_motion.py                      # 20 s clip: DDPM 50 vs DDIM 25/10, then RSS at 1 and 10 min
    python bench/bench_motion.py --long-minutes 0     # skip the RSS runs
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
import wave as wave_io
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from joyvasa_core.motion.generator import COMPUTED_BUFFERS, MotionGenerator  # noqa: E402
from joyvasa_core.motion.sampler import SamplingOptions, sample_coefficients  # noqa: E402

SPEECH = REPO / "tests" / "fixtures" / "speech_en_16k.wav"
FILL_RULE = REPO / "tests" / "fixtures" / "fill_rule.py"
DEVICE = "cpu"


def build_model() -> MotionGenerator:
    """Shipped-config generator filled in place, tensor by tensor, so building it does not double the RSS."""
    spec = importlib.util.spec_from_file_location("fill_rule", FILL_RULE)
    rule = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rule)
    model = MotionGenerator()
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point() and key not in COMPUTED_BUFFERS:  # the fill rule's skip list
                tensor.copy_(rule.fill_tensor(0, key, tensor.shape).to(tensor.dtype))
    return model.to(DEVICE).eval()


def read_speech() -> torch.Tensor:
    """The 16-bit mono 16 kHz WAV as int16 / 32768 (what load_audio returns for it), via the stdlib reader so the
    bench also runs where soundfile/soxr are not installed."""
    with wave_io.open(str(SPEECH), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 16000), "expected 16 kHz mono int16"
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    return torch.from_numpy(pcm.astype(np.float32) / 32768.0)


def speech(seconds: float) -> torch.Tensor:
    wave = read_speech()
    n = int(round(seconds * 16000))
    reps = -(-n // wave.shape[0])
    return wave.repeat(reps)[:n]


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(model: MotionGenerator, wave: torch.Tensor, scheduler: str, steps: int | None, seed: int = 0):
    options = SamplingOptions(scheduler=scheduler, num_steps=steps, seed=seed)
    start = time.perf_counter()
    coef = sample_coefficients(model, wave, options)
    return coef, time.perf_counter() - start


def compare(seconds: float) -> None:
    model = build_model()
    wave = speech(seconds)
    audio_s = wave.shape[0] / 16000
    where = torch.cuda.get_device_name() if DEVICE.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    print(f"clip: {audio_s:.1f} s of speech ({SPEECH.name} tiled), {where}, torch {torch.__version__}")
    ref, ref_t = run(model, wave, "ddpm", None)
    print(f"  ddpm 50 steps  : {ref_t:7.2f} s  = {ref_t / audio_s:.3f} s per s of audio  ({ref.shape[1]} frames)")
    for steps in (25, 10):
        fast, fast_t = run(model, wave, "ddim", steps)
        dev = (fast - ref).abs()
        pose = dev[..., 63:70]
        print(
            f"  ddim {steps:2d} steps  : {fast_t:7.2f} s  = {fast_t / audio_s:.3f} s per s of audio, "
            f"speed-up x{ref_t / fast_t:.1f}; |ddim - ddpm| normalised motion max {float(dev.max()):.3f} "
            f"mean {float(dev.mean()):.3f} (pose dims max {float(pose.max()):.3f}); "
            f"ddpm motion std {float(ref.std()):.3f}"
        )


def child(minutes: float, scheduler: str, steps: int | None) -> None:
    """Runs in its own process so the peak RSS belongs to this audio length only."""
    model = build_model()
    wave = speech(minutes * 60)
    before_peak, before_now = peak_rss_mb(), current_rss_mb()
    coef, took = run(model, wave, scheduler, steps)
    print(json.dumps({
        "minutes": minutes, "scheduler": scheduler, "steps": steps or 50, "frames": coef.shape[1],
        "seconds": took, "rss_after_load_mb": before_now, "peak_before_sampling_mb": before_peak,
        "peak_rss_mb": peak_rss_mb(),
    }))


def rss_case(minutes: float, scheduler: str, steps: int | None, threads: int) -> None:
    cmd = [sys.executable, __file__, "--child", str(minutes), "--scheduler", scheduler, "--threads", str(threads)]
    if steps:
        cmd += ["--steps", str(steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    r = json.loads(out)
    growth = r["peak_rss_mb"] - r["peak_before_sampling_mb"]
    print(
        f"  {r['minutes']:>4} min, {r['scheduler']} {r['steps']} steps: {r['frames']} frames in {r['seconds']:.1f} s "
        f"({r['seconds'] / (r['minutes'] * 60):.3f} s per s of audio); "
        f"RSS after model load {r['rss_after_load_mb']:.0f} MB, peak {r['peak_rss_mb']:.0f} MB "
        f"(+{growth:.0f} MB over the load peak while sampling)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="clip length for the speed comparison")
    parser.add_argument("--short-minutes", type=float, default=1.0)
    parser.add_argument("--short-scheduler", default="ddpm")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="0 skips the RSS runs")
    parser.add_argument("--long-steps", type=int, default=10, help="DDIM steps for the long run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the RSS runs are CPU-only)")
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scheduler", default="ddpm", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = args.device
    if args.child is not None:
        child(args.child, args.scheduler, args.steps)
        return
    compare(args.seconds)
    if args.long_minutes > 0 and DEVICE == "cpu":
        print("peak RSS (fresh process per case):")
        rss_case(args.short_minutes, args.short_scheduler, None, args.threads)
        rss_case(args.long_minutes, "ddim", args.long_steps, args.threads)


if __name__ == "__main__":
    main()
