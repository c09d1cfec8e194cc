"""``python -m joyvasa_core live``: the live session driven from a file, for users and tests.

The speech file is read as the single job reads it, then pushed in pieces of ``--chunk-ms`` (as fast as possible, or
paced like a microphone with ``--realtime``); the frames are written in the order they come out, with the sound. The
single job's options that apply (models, presets, sampler, seed, crop, ...) are parsed and checked by the single
job's own parser; those that do not (another motion source, extra outputs) stop with one line. One line of figures
follows: the time to the first frame after the first piece, the frames, the latency behind the speech, the real-time
factor; ``--compare-offline`` adds how far the motion's keypoints are from the look-ahead ``all`` (offline) result.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from typing import Any

from .audio import SAMPLE_RATE
from .errors import JoyVASAError
from .live.server import LiveLimits
from .motion.blinks import LIVE_BLINK_MODES, LIVE_BLINKS
from .motion.streaming import DEFAULT_CHUNK_FRAMES, DEFAULT_LOOKAHEAD_FRAMES, StreamOptions
from .validate import CLI, number_problem

DEFAULT_CHUNK_MS = 200  # what a microphone page sends: 10 ms pieces are common, 200 ms keeps the loop cheap
NOT_LIVE = ("motion", "motion_from_video", "head_from", "lips_from", "save_motion", "motion_preview",
            "export_template")  # single-job options live does not take
LIVE_OPTIONS = ("lookahead", "step_frames", "chunk_ms", "realtime", "compare_offline", "host", "port",
                "max_sessions")


def _lookahead(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of frames or 'all'") from None
    return value


def build_live_parser() -> argparse.ArgumentParser:
    """The single job's parser, with the live options on top."""
    from .cli import build_parser

    p = build_parser(out_required=False)
    p.prog = "python -m joyvasa_core live"
    p.description = ("Drive a live session from a speech file: frames come out while the speech is pushed in pieces; "
                     "prints the latency figures.")
    p.set_defaults(blinks=LIVE_BLINKS)  # an idle face that never blinks looks frozen (README, Live)
    p.add_argument("--lookahead", type=_lookahead, default=DEFAULT_LOOKAHEAD_FRAMES, metavar="FRAMES|all",
                   help="frames of speech (40 ms each) a motion step waits for past the frames it finishes; 'all' = "
                        f"whole windows, the offline result [{DEFAULT_LOOKAHEAD_FRAMES}]")
    p.add_argument("--step-frames", type=int, default=DEFAULT_CHUNK_FRAMES, metavar="FRAMES",
                   help=f"frames finished per motion step (ignored with --lookahead all) [{DEFAULT_CHUNK_FRAMES}]")
    p.add_argument("--chunk-ms", type=float, default=DEFAULT_CHUNK_MS, metavar="MS",
                   help=f"milliseconds of speech per push [{DEFAULT_CHUNK_MS}]")
    p.add_argument("--realtime", action="store_true", help="push like a microphone: one piece per --chunk-ms")
    p.add_argument("--host", default="127.0.0.1", help="without --audio: the address the live page is served on; "
                   "anything but 127.0.0.1/localhost opens it to the network (a warning is printed) [127.0.0.1]")
    p.add_argument("--port", type=int, default=8765, help="without --audio: the live page's port [8765]")
    p.add_argument("--max-sessions", type=int, default=LiveLimits().max_sessions,
                   help=f"without --audio: viewers served at once, each with its own session "
                        f"[{LiveLimits().max_sessions}]")
    p.add_argument("--compare-offline", action="store_true",
                   help="also sample the look-ahead 'all' motion and print the keypoint RMSE per frame against it")
    return p


def _check_live_args(args: argparse.Namespace) -> None:
    from .job import OPTION_DEFAULTS

    for key in NOT_LIVE:
        if getattr(args, key) != OPTION_DEFAULTS[key]:
            raise JoyVASAError(f"--{key.replace('_', '-')}: does not apply to live (the motion comes from the speech "
                               "as it arrives, into one video); drop it, or use the single job.")
    if args.blinks not in LIVE_BLINK_MODES:
        raise JoyVASAError(f"--blinks {args.blinks}: live cannot look for blinks in a motion that is still being "
                           f"made; use {' or '.join(LIVE_BLINK_MODES)}.")
    numbers = {key: getattr(args, key) for key in ("lookahead", "step_frames", "chunk_ms", "port", "max_sessions")}
    problem = number_problem(numbers, CLI)  # the bounds every front end uses (validate.RANGES)
    if problem:
        raise JoyVASAError(problem)


def speech_pieces(wave: Any, chunk_ms: float, realtime: bool) -> Iterator[Any]:
    """Pieces of ``chunk_ms`` of 16 kHz speech; with ``realtime`` each comes when a microphone would deliver it."""
    size = max(1, int(round(chunk_ms * SAMPLE_RATE / 1000)))
    start = time.perf_counter()
    for lo in range(0, wave.shape[-1], size):
        if realtime:
            due = start + (lo + size) / SAMPLE_RATE
            time.sleep(max(0.0, due - time.perf_counter()))
        yield wave[lo : lo + size]


def keypoint_rmse(live: Any, offline: Any) -> tuple[float, float]:
    """Mean and worst per-frame RMSE between two (N, 21, 3) keypoint tracks (over the frames both have)."""
    n = min(len(live), len(offline))
    per_frame = (live[:n] - offline[:n]).pow(2).mean(dim=(1, 2)).sqrt()
    return float(per_frame.mean()), float(per_frame.max())


def run_live(args: argparse.Namespace) -> int:
    """Prepare as the single job does, then push, write and report."""
    import torch

    from .live.session import LiveSession
    from .video import VideoWriter

    _check_live_args(args)
    if args.audio is None and args.image is not None:
        return serve_page(args)
    job = _prepare(args)
    stream = StreamOptions(chunk_frames=args.step_frames, lookahead=args.lookahead)
    wave = job["wave"]
    with torch.inference_mode(), LiveSession(job["models"], job["image"], job["options"], stream,
                                             blinks=job["blinks"]) as session:
        keypoints = []
        with VideoWriter(job["out"], fps=session.stats.fps, crf=job["crf"], audio=wave,
                         overwrite=job["overwrite"]) as out:
            for piece in speech_pieces(wave, args.chunk_ms, args.realtime):
                for frame in session.push(piece, SAMPLE_RATE):
                    out.write(frame.image[None])
                    keypoints.append(frame.keypoints)
            for frame in session.finish():
                out.write(frame.image[None])
                keypoints.append(frame.keypoints)
        line = f"seed {session.seed}, {stream.describe()}: " + session.stats.line(wave.shape[-1] / SAMPLE_RATE)
        if args.compare_offline:
            line += _compare(job, session.face, torch.stack(keypoints))
    print(f"{out.path}: {line}", flush=True)
    return 0


def _compare(job: dict[str, Any], face: Any, keypoints: Any) -> str:
    """The offline (look-ahead all) keypoints of the same speech, face and seed, motion only (nothing rendered)."""
    import torch

    from .live.session import LiveSession

    with LiveSession(job["models"], face, job["options"], StreamOptions(lookahead=None), render=False,
                     blinks=job["blinks"]) as offline:
        frames = list(offline.push(job["wave"], SAMPLE_RATE)) + list(offline.finish())
    mean, worst = keypoint_rmse(keypoints, torch.stack([f.keypoints for f in frames]))
    return f"; keypoint RMSE per frame vs look-ahead all: mean {mean:.4g}, worst {worst:.4g}"


def serve_page(args: argparse.Namespace) -> int:
    """No speech file: serve the live page on ``--host``/``--port``, a session per viewer, until Ctrl-C or SIGTERM."""
    from pathlib import Path

    from .cli import load_with_notes
    from .job import plan_job, read_portrait
    from .live.server import DEFAULT_SOURCE, LiveHub, serve
    from .live.source import live_source
    from .pipeline import prepare_face

    if args.out is not None:
        raise JoyVASAError(f"--out {args.out}: without --audio, live serves its page and writes no video; drop --out, "
                           "or give --audio to drive the session from a file.")
    values = {k: v for k, v in vars(args).items() if k not in LIVE_OPTIONS}
    plan = plan_job(values, speech_from_viewers=True)
    image = read_portrait(plan)
    models, _ = load_with_notes(plan, plan.notes, args.quiet)
    face = prepare_face(image, models.liveportrait, models.detector, plan.options)
    stream = StreamOptions(chunk_frames=args.step_frames, lookahead=args.lookahead)
    source = live_source(lambda: models.liveportrait, lambda: models.motion_model, face, plan.options, stream,
                         label=Path(plan.image).name, blinks=plan.blinks)
    hub = LiveHub(LiveLimits(max_sessions=args.max_sessions))
    hub.offer(DEFAULT_SOURCE, source)
    try:
        serve(hub, args.host, args.port, announce=lambda line: print(line, flush=True))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: how a server is stopped
        print("live page stopped", flush=True)
    return 0


def _prepare(args: argparse.Namespace) -> dict[str, Any]:
    """The single job's plan, file checks and model loading for the options that apply to live."""
    from .cli import load_with_notes
    from .job import check_job, plan_job

    values = {k: v for k, v in vars(args).items() if k not in LIVE_OPTIONS}
    plan = plan_job(values)
    if plan.audio is None:
        raise JoyVASAError("--audio missing: live needs the speech to push; give a speech file.")
    inputs = check_job(plan)
    models, _ = load_with_notes(plan, inputs.notes, args.quiet)
    return {"models": models, "image": inputs.image, "wave": inputs.speech, "options": plan.options,
            "out": inputs.outputs["out"], "crf": plan.crf, "overwrite": plan.overwrite, "blinks": plan.blinks}
