"""Command line: ``python -m joyvasa_core --image portrait.png --audio speech.wav --models models --out talking.mp4``.

A front end only: parse the flags, ``job.plan_job`` them (every decision and check), ``job.check_job`` the files,
``job.load_job_models``, then ``job.run_job``; this module prints what they report.

Every option and file is checked before any model loads (``validate``); user errors (bad options, missing or wrong
files, no face, silent audio, an existing output) print one line and exit with code 2, without a traceback. Ctrl-C
(exit 130), SIGTERM (143) and SIGHUP (129) stop the run and remove its partial files; notes (a resized photo, a
dropped alpha channel, a very short clip) are printed as ``note:`` lines.

With no ``--image``/``--audio`` it animates the shipped example; missing model files are downloaded into ``--models``
(a per-user folder by default) on first use, unless ``--no-download``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .errors import JoyVASAError
from .job import BLINK_MODES, DETECTORS, DTYPES, MOTION_SOURCES, OPTION_DEFAULTS, PRESETS, SAMPLERS
from .partials import remove_live_partials

EXIT_USER_ERROR = 2
EXIT_CANCELLED = 130
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
STOP_GRACE_SECONDS = 3.0  # how long a stop signal waits for the main thread's own clean-up


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so every ``with`` and ``finally`` removes its partial files."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _watch_stops(read_fd: int, grace: float, done: threading.Event) -> None:
    """A thread that sees each signal as it arrives (the wakeup fd), even while the main thread is inside one long
    native call (fp16 convolutions on a CPU take tens of seconds) where Python cannot run its handler. If the main
    thread has not finished ``grace`` seconds after a stop signal, the partial files go and the process ends with the
    signal's exit code."""
    stops = {int(s) for s in STOP_SIGNALS} | {int(signal.SIGINT)}
    with open(read_fd, "rb", buffering=0) as pipe:
        while (data := pipe.read(1)) and data[0] not in stops:
            pass
    if not data or done.wait(grace):
        return
    remove_live_partials()
    os.write(2, f"\nstopped by {signal.Signals(data[0]).name}; no video was written.\n".encode())
    os._exit(128 + data[0])


@contextlib.contextmanager
def stop_cleanly_on_signals(grace: float = STOP_GRACE_SECONDS) -> Iterator[None]:
    """Turn SIGTERM/SIGHUP (what ``timeout``, job schedulers and a closed terminal send) into ``Stopped``; a stop the
    main thread cannot take within ``grace`` seconds is finished by a watcher thread (``_watch_stops``)."""

    def handler(signum: int, frame: Any) -> None:
        for sig in STOP_SIGNALS:  # a second signal must not interrupt the clean-up
            signal.signal(sig, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    done = threading.Event()
    threading.Thread(target=_watch_stops, args=(read_fd, grace, done), name="joyvasa-stop-watch", daemon=True).start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(old_fd)
        os.close(write_fd)  # the watcher reads the end of the pipe and returns
        for sig, old in previous.items():
            signal.signal(sig, old)


class OneLineParser(argparse.ArgumentParser):
    """argparse's usage errors as one line, like every other error of this command."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"error: {message}; see --help.\n")


def _box(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not x,y,w,h (four numbers, e.g. 120,40,300,300)") from None


def _add_job_options(p: argparse.ArgumentParser, out_required: bool = True) -> None:
    """Inputs, models, output and the preset."""
    from .download import user_models_dir
    from .motion.sampler import CLI_CFG_SCALE as cli_cfg
    from .motion.sampler import WEB_CFG_SCALE as web_cfg

    p.add_argument("--image", help="reference portrait (png/jpg) [the shipped example portrait]")
    p.add_argument("--audio", help="speech (wav/flac/mp3/m4a...) [with the example portrait: its speech, unless a "
                   "motion drives it; with your own portrait give --audio, --motion or --motion-from-video]")
    p.add_argument("--models", default=str(user_models_dir()), help="models folder holding liveportrait/ and "
                   "joyvasa/ (ComfyUI's models folder or the reference's pretrained_weights); JOYVASA_MODELS sets "
                   "the default [%(default)s]")
    p.add_argument("--download", action=argparse.BooleanOptionalAction,
                   help="download missing model files from the Hugging Face Hub into --models (HF_ENDPOINT, "
                        "HF_TOKEN and HF_HUB_OFFLINE are honoured) [--download]")
    p.add_argument("--out", required=out_required, help="output .mp4 (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--animal", action="store_true", help="animal mode: animal weights, whole image, no stitching")
    p.add_argument("--preset", choices=PRESETS,
                   help=f"web = the reference demo's path (crop, stitching, paste-back, cfg {web_cfg}); cli = the "
                        f"reference command line's (no crop, no stitching, multiplier 1.1, cfg {cli_cfg}) [web]")


def _add_sampling_and_render_options(p: argparse.ArgumentParser) -> None:
    from .motion.sampler import CLI_CFG_SCALE as cli_cfg
    from .motion.sampler import WEB_CFG_SCALE as web_cfg

    p.add_argument("--cfg-scale", type=float,
                   help=f"classifier-free guidance scale (preset: web {web_cfg}, cli {cli_cfg})")
    p.add_argument("--steps", type=int, help="diffusion steps (default: all of the checkpoint's, 50)")
    p.add_argument("--sampler", choices=SAMPLERS, help="ddpm = the reference's [ddpm]")
    p.add_argument("--seed", type=int, help="noise seed (default: random, printed so the run can be repeated)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1, mps [auto]")
    p.add_argument("--dtype", choices=DTYPES,
                   help="compute precision of the image networks; auto = bf16 where the CPU/GPU has native bf16 "
                        "(same picture, >= 40 dB PSNR against fp32), else fp32 [auto]")
    p.add_argument("--no-crop", nargs="?", const="whole", default=False, choices=("whole", "squeeze"),
                   help="animate the whole image, not a face crop: whole (the default) fits it undistorted into the "
                        "square, its edges extended; squeeze resizes it to the square as the reference does (also "
                        "with --animal, which animates the whole image anyway)")
    p.add_argument("--no-pasteback", action="store_true",
                   help="output the 512x512 crop (default: the photo's size wherever the crop allows it)")
    p.add_argument("--no-stitching", action="store_true", help="no stitching (a face crop is then not pasted back)")
    p.add_argument("--batch-size", type=int, help="frames per warp/render batch [1 on CPU, 8 on GPU]")
    p.add_argument("--crf", type=int, help="x264 quality, lower is better (reference 18) [18]")


def _add_face_options(p: argparse.ArgumentParser) -> None:
    from .face.select import FACE_ORDERS
    from .loading import DETECTOR_RANGES

    p.add_argument("--detector", choices=DETECTORS,
                   help="face detector: official ONNX files when present, else the bundled one [auto]")
    p.add_argument("--detector-range", choices=DETECTOR_RANGES,
                   help="bundled detector model: short (portraits), full (smaller faces), auto = short, then full "
                        "when it finds no face [auto]")
    p.add_argument("--face-index", type=int, help="which face when the photo holds several [0]")
    p.add_argument("--face-order", choices=FACE_ORDERS, help="order of --face-index [largest]")
    p.add_argument("--box", type=_box, metavar="X,Y,W,H",
                   help="crop this box (image pixels: top-left corner, width, height) instead of detecting a face, "
                        "e.g. one face of a group photo or an animal's head")


def _add_motion_options(p: argparse.ArgumentParser) -> None:
    """Where the motion comes from, what is done to it and the files written besides the video."""
    p.add_argument("--save-motion", metavar="FILE", help="also save the motion used (.safetensors)")
    p.add_argument("--motion", metavar="FILE", help="reuse a saved motion (.safetensors) or a LivePortrait driving "
                   "template (.pkl) instead of sampling one")
    p.add_argument("--motion-from-video", metavar="VIDEO", help="a driving video: its head pose and expression, read "
                   "by LivePortrait's motion extractor. Alone it drives the portrait (LivePortrait's video-driven "
                   "animation); with --audio pick its parts with --head-from / --lips-from")
    p.add_argument("--head-from", choices=MOTION_SOURCES, help="take the head pose (rotation, translation, scale) "
                   "from this source; the expression comes from --motion, else the speech, else the video")
    p.add_argument("--lips-from", choices=MOTION_SOURCES, help="take the lips from this source")
    p.add_argument("--blinks", choices=BLINK_MODES, help="add blinks: on, if_none (only when the "
                   "motion has none; not live) or off [off; live: on]")
    p.add_argument("--blink-rate", type=float, help="blinks per minute with --blinks [15]")
    p.add_argument("--motion-preview", metavar="PNG", help="also draw the motion over time, with the speech (.png)")
    p.add_argument("--export-template", metavar="PKL", help="also write the motion as a LivePortrait driving "
                   "template (.pkl, for LivePortrait -d or FasterLivePortrait)")
    p.add_argument("--reference-lag", action="store_true",
                   help="keep the reference's two frames of leading silence (the lips then trail the sound by "
                        "80 ms); by default they are dropped and the video has round(seconds x 25) frames")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser(out_required: bool = True) -> argparse.ArgumentParser:
    """The command line's flags; their defaults are ``job.OPTION_DEFAULTS`` (one table for every front end).
    ``out_required`` False: the live page, whose frames go to viewers rather than a file."""
    p = OneLineParser(
        prog="python -m joyvasa_core",
        description="Make a portrait (or an animal face) talk from speech: JoyVASA motion + LivePortrait rendering.",
    )
    _add_job_options(p, out_required)
    for add in (_add_sampling_and_render_options, _add_face_options, _add_motion_options):
        add(p)
    p.set_defaults(**{k: v for k, v in OPTION_DEFAULTS.items() if k != "models"})
    return p


def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _note(message: str) -> None:
    """Notes are printed even with --quiet: they say something about the result."""
    print(f"note: {message}", file=sys.stderr, flush=True)


def _models_line(models: Any) -> str:
    lp = models.liveportrait
    return (f"models: {lp!r}" + (f", {models.motion_model!r}" if models.motion_model else "")
            + (f", detector {getattr(models.detector, 'name', 'none')}" if models.detector else ""))


def load_with_notes(plan: Any, notes: tuple[str, ...] | list[str], quiet: bool) -> tuple[Any, list]:
    """Print the job's notes, then fetch what is missing (a bar per file) and load its models: (ModelSet, fetched)."""
    from .job import load_job_models
    from .progress import TqdmFileProgress

    for note in notes:
        _note(note)
    files_bar = TqdmFileProgress(not quiet)
    try:
        return load_job_models(plan, files_bar)
    finally:
        files_bar.close()


def run(args: argparse.Namespace) -> int:
    """Plan, check, load, run: the job of ``args``, its progress on tqdm bars and stderr."""
    from .job import JobReport, check_job, plan_job, run_job
    from .loading import auto_dtype
    from .progress import TqdmProgress
    from .types import dtype_name

    t0 = time.perf_counter()
    quiet = args.quiet
    plan = plan_job(vars(args))
    inputs = check_job(plan)
    models, fetched = load_with_notes(plan, inputs.notes, quiet)
    if fetched:
        _log(f"downloaded {len(fetched)} model files into {plan.models.root}", quiet)
    lp = models.liveportrait
    if plan.models.dtype == "auto":
        _log(f"precision: {dtype_name(lp.dtype)} (auto: {auto_dtype(lp.device)[1]})", quiet)
    _log(_models_line(models), quiet)
    report = JobReport(log=lambda m: _log(m, quiet), note=_note, progress=lambda stage: TqdmProgress(stage, not quiet))
    video = run_job(plan, models, inputs, report)
    _log(f"wrote {video.path} ({video.n_frames} frames, {time.perf_counter() - t0:.1f} s)", quiet)
    return 0


def exit_status(run: Callable[[], int], kept: str) -> int:
    """``run()`` as a command: its status, or one ``error:`` line (exit 2) for a user error, and for SIGTERM/SIGHUP
    (128 + signal) or Ctrl-C (130) a line saying what was ``kept``."""
    try:
        with stop_cleanly_on_signals():
            return run()
    except JoyVASAError as exc:
        print(f"error: {exc.for_cli()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Stopped as exc:
        name = signal.Signals(exc.signum).name
        print(f"\nstopped by {name}; {kept}.", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(f"\ncancelled; {kept}.", file=sys.stderr)
        return EXIT_CANCELLED


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["live"]:  # the live session driven from a file (cli_live.py)
        from .cli_live import build_live_parser, run_live

        live = build_live_parser().parse_args(argv[1:])
        return exit_status(lambda: run_live(live), "no video was written")
    args = build_parser().parse_args(argv)
    return exit_status(lambda: run(args), "no video was written")


if __name__ == "__main__":
    sys.exit(main())
