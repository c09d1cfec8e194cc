"""Live session speed, side by side in one run: time to the first frame, frames per second sustained, real-time
factor and the share of speech encoding, motion sampling, keypoints and rendering, for a few look-ahead / chunk
settings, on the small networks and on full-width ones.

Weights are the fixture fill rule's random ones (the same cost as the released checkpoints, nothing about how the
motion looks). The speech is the fixture's English speech, pushed in 200 ms pieces as fast as the session takes
them; the frames are pasted back into the 512x512 photo. Prints figures, never asserts them: the machine may be
shared. Say which CPU (printed) and, on a GPU, which card.

    python bench/bench_live.py                       # small networks, three settings, 3 s of speech
    python bench/bench_live.py --full --seconds 2    # full widths (HuBERT-base, official LivePortrait), slow on CPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixture_support import fixture_path, load_fixture  # noqa: E402
from motion_support import template_from  # noqa: E402

from joyvasa_core.images import read_image  # noqa: E402
from joyvasa_core.live import LiveSession  # noqa: E402
from joyvasa_core.loading import ModelSet, bundled_face_detector, load_models, resolve_dtype  # noqa: E402
from joyvasa_core.motion.streaming import StreamOptions  # noqa: E402
from joyvasa_core.pipeline import animate_options, prepare_face  # noqa: E402
from joyvasa_core.types import LivePortraitModels, MotionModel  # noqa: E402

PIECE_MS = 200
# name, chunk, look-ahead; the small networks' windows are 8 frames (P 3), the released ones' 100 (P 10)
SETTINGS = {"small": [("all", None, None), ("4/2", 4, 2), ("2/1", 2, 1)],
            "full": [("all", None, None), ("10/10", 10, 10), ("5/5", 5, 5), ("5/2", 5, 2)]}


def small_models(dtype: str) -> ModelSet:
    from model_folders import write_joyvasa, write_liveportrait

    root = Path(tempfile.mkdtemp(prefix="bench_live_"))
    write_liveportrait(root)
    write_joyvasa(root)
    return load_models(root, device="cpu", dtype=dtype)


def full_models(dtype: str) -> ModelSet:
    """Official LivePortrait widths and the shipped JoyVASA config (HuBERT-base), filled by the fixture rule."""
    from bench_motion import build_model
    from bench_render import Setup

    nets = Setup(small=False).nets
    lp = LivePortraitModels(appearance=nets["appearance_feature_extractor"], motion_extractor=nets["motion_extractor"],
                            warping=nets["warping_module"], spade=nets["spade_generator"],
                            stitching=nets["stitching_retargeting_module"], device=torch.device("cpu"),
                            dtype=resolve_dtype(dtype, torch.device("cpu")))
    template = template_from(load_fixture("joyvasa_shipped.safetensors"))
    motion = MotionModel(generator=build_model(), template=template, device=torch.device("cpu"))
    return ModelSet(liveportrait=lp, motion_model=motion, detector=bundled_face_detector("auto"))


def speech(seconds: float) -> np.ndarray:
    wave, rate = sf.read(str(fixture_path("speech_en_16k.wav")), dtype="float32")
    assert rate == 16000
    n = int(seconds * rate)
    return np.tile(wave, -(-n // len(wave)))[:n]


def run_setting(models: ModelSet, face, chunk: int | None, lookahead: int | None, wave: np.ndarray) -> dict:
    stream = StreamOptions(lookahead=None) if lookahead is None else StreamOptions(chunk, lookahead)
    options = animate_options(sampling={"seed": 0})
    piece = 16000 * PIECE_MS // 1000
    with LiveSession(models, face, options, stream) as session:
        for lo in range(0, len(wave), piece):
            for _ in session.push(wave[lo : lo + piece], 16000):
                pass
        for _ in session.finish():
            pass
        stats = session.stats
        shares = stats.shares(session.motion.timings)
    return {"ttff": stats.time_to_first_frame, "frames": stats.frames, "fps": stats.frames / stats.busy,
            "rtf": stats.real_time_factor(len(wave) / 16000), "latency": stats.mean_latency,
            "worst": stats.latency_max, "shares": shares}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="full-width networks (slow on a CPU)")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds of speech [3]")
    ap.add_argument("--dtype", default="auto", help="image networks' precision [auto]")
    names = {k: ",".join(s[0] for s in v) for k, v in SETTINGS.items()}
    ap.add_argument("--settings", help="chunk/look-ahead settings by name, comma-separated [the networks' own: "
                    f"small {names['small']}; full {names['full']}]")
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; {'full' if args.full else 'small'} networks, {args.seconds:g} s of speech in "
          f"{PIECE_MS} ms pieces, dtype {args.dtype}")
    models = full_models(args.dtype) if args.full else small_models(args.dtype)
    face = prepare_face(read_image(fixture_path("astronaut.png")), models.liveportrait, models.detector,
                        animate_options())
    wave = speech(args.seconds)
    settings = SETTINGS["full" if args.full else "small"]
    wanted = set(args.settings.split(",")) if args.settings else {s[0] for s in settings}
    print(f"{'chunk/look':>10} {'first frame':>12} {'frames':>6} {'fps':>6} {'RTF':>6} {'latency':>9} {'worst':>9}  "
          "shares: encode sample compose render other")
    for name, chunk, lookahead in settings:
        if name not in wanted:
            continue
        r = run_setting(models, face, chunk, lookahead, wave)
        s = r["shares"]
        print(f"{name:>10} {r['ttff'] * 1000:>10.0f}ms {r['frames']:>6} {r['fps']:>6.2f} {r['rtf']:>6.2f} "
              f"{r['latency'] * 1000:>7.0f}ms {r['worst'] * 1000:>7.0f}ms  "
              f"{s['encode']:.0%} {s['sample']:.0%} {s['compose']:.0%} {s['render']:.0%} {s['other']:.0%}",
              flush=True)


if __name__ == "__main__":
    main()
