"""Command line: ``python -m joyvasa_core --image portrait.png --audio speech.wav --models models --out talking.mp4``.

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
import math
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .audio import SAMPLE_RATE
from .errors import FaceInputError, JoyVASAError
from .model_files import ModelFile
from .validate import (
    CLI,
    MOTION_EXTS,
    PREVIEW_EXTS,
    TEMPLATE_EXTS,
    VIDEO_EXTS,
    Output,
    check_input_file,
    check_options,
    check_outputs,
    expression_source,
)

EXIT_USER_ERROR = 2
EXIT_CANCELLED = 130
MOTION_SOURCES = ("speech", "video", "motion")
BLINK_MODES = ("off", "on", "if_none")
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so every ``with`` and ``finally`` removes its partial files."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_cleanly_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP (what ``timeout``, job schedulers and a closed terminal send) into ``Stopped``."""

    def handler(signum: int, frame: Any) -> None:
        for sig in STOP_SIGNALS:  # a second signal must not interrupt the clean-up
            signal.signal(sig, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
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


class TqdmProgress:
    """The ``Progress`` protocol on a tqdm bar (created on the first update, when the total is known)."""

    def __init__(self, desc: str, enabled: bool = True) -> None:
        self.desc = desc
        self.enabled = enabled
        self.bar = None

    def update(self, done: int, total: int, preview: Any = None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="step" if "motion" in self.desc else "frame",
                            dynamic_ncols=True, leave=True)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def check_cancel(self) -> None:
        return None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class TqdmFileProgress:
    """One tqdm bar (bytes) per downloaded file."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, file: ModelFile, done: int, total: int) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(file.target)
        if bar is None:
            from tqdm import tqdm

            bar = self.bars[file.target] = tqdm(total=total, desc=file.target, unit="B", unit_scale=True,
                                                dynamic_ncols=True, leave=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def build_parser() -> argparse.ArgumentParser:
    from .download import user_models_dir
    from .face.select import FACE_ORDERS
    from .models import DETECTOR_RANGES

    p = OneLineParser(
        prog="python -m joyvasa_core",
        description="Make a portrait (or an animal face) talk from speech: JoyVASA motion + LivePortrait rendering.",
    )
    p.add_argument("--image", help="reference portrait (png/jpg) [the shipped example portrait]")
    p.add_argument("--audio", help="speech (wav/flac/mp3/m4a...) [with the example portrait: its speech, unless a "
                   "motion drives it; with your own portrait give --audio, --motion or --motion-from-video]")
    p.add_argument("--models", default=str(user_models_dir()), help="models folder holding liveportrait/ and "
                   "joyvasa/ (ComfyUI's models folder or the reference's pretrained_weights); JOYVASA_MODELS sets "
                   "the default [%(default)s]")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                   help="download missing model files from the Hugging Face Hub into --models (HF_ENDPOINT, "
                        "HF_TOKEN and HF_HUB_OFFLINE are honoured) [--download]")
    p.add_argument("--out", required=True, help="output .mp4 (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--animal", action="store_true", help="animal mode: animal weights, whole image, no stitching")
    p.add_argument("--preset", choices=("web", "cli"), default="web",
                   help="web = the reference demo's path (crop, stitching, paste-back, cfg 4.0); cli = the "
                        "reference command line's (no crop, no stitching, multiplier 1.1, cfg 2.8) [web]")
    p.add_argument("--cfg-scale", type=float, help="classifier-free guidance scale (preset: web 4.0, cli 2.8)")
    p.add_argument("--steps", type=int, help="diffusion steps (default: all of the checkpoint's, 50)")
    p.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddpm", help="ddpm = the reference's [ddpm]")
    p.add_argument("--seed", type=int, help="noise seed (default: random, printed so the run can be repeated)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps [auto]")
    p.add_argument("--dtype", default="auto", choices=("fp32", "fp16", "bf16", "auto"),
                   help="compute precision of the image networks; auto = bf16 where the CPU/GPU has native bf16 "
                        "(same picture, >= 40 dB PSNR against fp32), else fp32 [auto]")
    p.add_argument("--no-crop", action="store_true", help="animate the whole image resized to 256 (no face crop)")
    p.add_argument("--no-pasteback", action="store_true", help="output the 512x512 face crop")
    p.add_argument("--no-stitching", action="store_true", help="no stitching (also disables paste-back)")
    p.add_argument("--batch-size", type=int, default=None, help="frames per warp/render batch [1 on CPU, 8 on GPU]")
    p.add_argument("--crf", type=int, default=18, help="x264 quality, lower is better (reference 18) [18]")
    p.add_argument("--detector", choices=("auto", "official", "bundled"), default="auto",
                   help="face detector: official ONNX files when present, else the bundled one [auto]")
    p.add_argument("--detector-range", choices=DETECTOR_RANGES, default="auto",
                   help="bundled detector model: short (portraits), full (smaller faces), auto = short, then full "
                        "when it finds no face [auto]")
    p.add_argument("--face-index", type=int, default=0, help="which face when the photo holds several [0]")
    p.add_argument("--face-order", choices=FACE_ORDERS, default="largest", help="order of --face-index [largest]")
    p.add_argument("--box", type=_box, metavar="X,Y,W,H",
                   help="crop this box (image pixels: top-left corner, width, height) instead of detecting a face, "
                        "e.g. one face of a group photo or an animal's head")
    p.add_argument("--save-motion", metavar="FILE", help="also save the motion used (.safetensors)")
    p.add_argument("--motion", metavar="FILE", help="reuse a saved motion (.safetensors) or a LivePortrait driving "
                   "template (.pkl) instead of sampling one")
    p.add_argument("--motion-from-video", metavar="VIDEO", help="a driving video: its head pose and expression, read "
                   "by LivePortrait's motion extractor. Alone it drives the portrait (LivePortrait's video-driven "
                   "animation); with --audio pick its parts with --head-from / --lips-from")
    p.add_argument("--head-from", choices=MOTION_SOURCES, help="take the head pose (rotation, translation, scale) "
                   "from this source; the expression comes from --motion, else the speech, else the video")
    p.add_argument("--lips-from", choices=MOTION_SOURCES, help="take the lips from this source")
    p.add_argument("--blinks", choices=BLINK_MODES, default="off", help="add blinks: on, if_none (only when the "
                   "motion has none) or off [off]")
    p.add_argument("--blink-rate", type=float, default=15.0, help="blinks per minute with --blinks [15]")
    p.add_argument("--motion-preview", metavar="PNG", help="also draw the motion over time, with the speech (.png)")
    p.add_argument("--export-template", metavar="PKL", help="also write the motion as a LivePortrait driving "
                   "template (.pkl, for LivePortrait -d or FasterLivePortrait)")
    p.add_argument("--reference-lag", action="store_true",
                   help="keep the reference's two frames of leading silence (the lips then trail the sound by "
                        "80 ms); by default they are dropped and the video has round(seconds x 25) frames")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _truncated(data) -> str | None:
    """The format of an image file cut short (its end marker missing), decided before a decoder prints warnings."""
    head, tail = bytes(data[:8]), bytes(data[-1024:])
    if head == PNG_SIGNATURE and b"IEND" not in tail:
        return "PNG"
    if head[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail:
        return "JPEG"
    return None


def read_image(path: str):
    """RGB(A) uint8/uint16 array of an image file (alpha handled by the reference loader's policy)."""
    import cv2
    import numpy as np

    p = check_input_file("image", path, CLI, "portrait image")
    data = np.fromfile(str(p), dtype=np.uint8)
    if not data.size:
        raise FaceInputError(f"--image {p}: the file is empty (0 bytes); give the portrait image.")
    kind = _truncated(data)
    if kind:
        raise FaceInputError(f"--image {p}: the {kind} file is truncated (an interrupted download or copy); save or "
                             "download it again.")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FaceInputError(f"--image {p}: cannot be read as an image (png, jpg, webp, bmp, tiff...).")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


@contextlib.contextmanager
def _reading(key: str) -> Iterator[None]:
    """An error met while reading an option's file starts with that option (``--audio: ...``)."""
    try:
        yield
    except JoyVASAError as exc:
        message = exc.for_cli()
        if message.startswith("--"):
            raise
        raise JoyVASAError(f"{CLI.name(key)}: {message}") from exc


def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _notes(notes: list[str] | tuple[str, ...]) -> None:
    """Notes are printed even with --quiet: they say something about the result."""
    for n in notes:
        print(f"note: {n}", file=sys.stderr, flush=True)


def _frame_size_estimate(image, paste_back: bool) -> tuple[int, int]:
    """(width, height) of the video before the models load: the photo's (as shrunk for paste-back) or the crop's."""
    from .face.crop import limited_size
    from .face.reference import ReferenceOptions

    if not paste_back:
        return ReferenceOptions.dsize, ReferenceOptions.dsize
    h, w = limited_size(image.shape[0], image.shape[1], ReferenceOptions.max_dim)
    return w + w % 2, h + h % 2


def _write_png(img, path: Path) -> None:
    """RGB uint8 as a PNG, complete under its name or not at all."""
    import cv2

    from .partials import atomic_path

    ok, data = cv2.imencode(".png", img[..., ::-1])
    if not ok:
        raise JoyVASAError(f"--motion-preview {path}: the image could not be encoded.")
    with atomic_path(path) as partial:
        partial.write_bytes(data.tobytes())


def run(args: argparse.Namespace) -> int:
    import torch

    from .audio.io import load_audio
    from .checkpoints.driving_template import write_driving_template
    from .checkpoints.motion_file import read_motion_file
    from .download import download_missing
    from .examples import EXAMPLE_AUDIO, EXAMPLE_IMAGE
    from .face.reference import check_image
    from .model_files import ANIMAL, HUMAN, MOTION_GENERATOR, OFFICIAL_DETECTOR
    from .models import auto_dtype, load_models, resolve_device
    from .motion.blinks import BlinkOptions, apply_blinks
    from .motion.edit import mix
    from .motion.preview import render_motion_preview
    from .partials import remove_stale_partials
    from .pipeline import (
        animate_options,
        default_batch_size,
        encode_audio,
        motion_from_video,
        prepare_animation,
        sample_motion,
    )
    from .types import dtype_name
    from .validate import check_free_space, estimate_video_bytes, speech_notes
    from .video import read_video

    t0 = time.perf_counter()
    # 1. Options and files, before anything heavy is read.
    if args.image is None:  # the shipped example: its portrait, and its speech unless a motion drives it
        args.image = str(EXAMPLE_IMAGE)
        if args.audio is None and args.motion is None and args.motion_from_video is None:
            args.audio = str(EXAMPLE_AUDIO)
    device = resolve_device(args.device)
    notes = check_options({**vars(args), "device_type": device.type}, CLI)
    inputs = {
        "image": check_input_file("image", args.image, CLI, "portrait image"),
        "audio": check_input_file("audio", args.audio, CLI, "speech file") if args.audio else None,
        "motion": check_input_file("motion", args.motion, CLI, "motion file") if args.motion else None,
        "motion_from_video": check_input_file("motion_from_video", args.motion_from_video, CLI, "driving video")
        if args.motion_from_video else None,
    }
    outputs, more = check_outputs([Output("out", args.out, VIDEO_EXTS, "video container"),
                                   Output("save_motion", args.save_motion, MOTION_EXTS, "motion file"),
                                   Output("motion_preview", args.motion_preview, PREVIEW_EXTS, "preview image"),
                                   Output("export_template", args.export_template, TEMPLATE_EXTS, "driving template")],
                                  inputs, args.overwrite, CLI)
    notes += more
    out, save_motion = outputs["out"], outputs.get("save_motion")
    for folder in {p.parent for p in outputs.values()}:
        remove_stale_partials(folder)

    # 2. The inputs themselves (cheap next to the models): unreadable, blank, silent or too big for the disk.
    image = read_image(inputs["image"])
    check_image(image)
    check_options({"box": args.box, "image_size": (image.shape[1], image.shape[0])}, CLI)
    with _reading("audio"):
        wave = load_audio(inputs["audio"]) if args.audio else None
    motions = {}
    with _reading("motion"):
        if args.motion:
            motions["motion"] = read_motion_file(inputs["motion"])
    with _reading("motion_from_video"):
        drive = read_video(inputs["motion_from_video"]) if args.motion_from_video else None
    plan = {"expression": expression_source(vars(args)), "head": args.head_from, "lips": args.lips_from}
    sample = "speech" in plan.values()
    if wave is not None:
        notes += speech_notes(wave.shape[-1] / SAMPLE_RATE, CLI)

    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    sampling: dict[str, Any] = {"seed": seed, "scheduler": args.sampler, "lag_compensation": not args.reference_lag}
    if args.cfg_scale is not None:
        sampling["cfg_scale"] = args.cfg_scale
    if args.steps is not None:
        sampling["num_steps"] = args.steps
    reference: dict[str, Any] = {"face_index": args.face_index, "face_order": args.face_order}
    if args.box is not None:
        x, y, w, h = args.box
        reference.update(crop="box", box=(x, y, x + w, y + h))
    try:
        options = animate_options(
            preset=args.preset, animal=args.animal, crop=False if args.no_crop else None,
            stitching=False if args.no_stitching else None, paste_back=False if args.no_pasteback else None,
            batch_size=args.batch_size, sampling=sampling, reference=reference,
        )
        blinks = BlinkOptions(mode=args.blinks, rate=args.blink_rate, seed=seed % 2**32)
    except (TypeError, ValueError) as exc:
        raise JoyVASAError(f"options: {exc}") from None
    if plan["expression"] == "motion":
        n_frames = motions["motion"].n_frames
    elif plan["expression"] == "speech":
        n_frames = math.floor((wave.shape[-1] + 1920) / 640)
    else:
        n_frames = len(drive[0])
    pasted = options.paste_back and options.keypoints.stitching and options.reference.crop != "whole"
    width, height = _frame_size_estimate(image, pasted)
    seconds = 0.0 if wave is None else wave.shape[-1] / SAMPLE_RATE
    check_free_space("out", out, estimate_video_bytes(n_frames, width, height, args.crf, seconds), CLI)
    _notes(notes)

    # 3. The models (fetched when missing), then the checks that need them.
    needed = [ANIMAL if args.animal else HUMAN] + ([MOTION_GENERATOR] if sample else [])
    if args.detector == "official" and not args.animal:  # optional files: only when asked for by name
        needed.append(OFFICIAL_DETECTOR)
    files_bar = TqdmFileProgress(not args.quiet)
    try:
        fetched = download_missing(args.models, needed, allow=args.download, progress=files_bar)
    finally:
        files_bar.close()
    if fetched:
        _log(f"downloaded {len(fetched)} model files into {args.models}", args.quiet)
    with _reading("models"):
        models = load_models(args.models, animal=args.animal, device=device, dtype=args.dtype,
                             detector=args.detector, need_motion_model=sample,
                             detector_range=args.detector_range,
                             need_detector=options.reference.crop not in ("whole", "box")
                             or options.keypoints.normalize_lip or drive is not None)
    if models.motion_model is not None:
        check_options({"sampler": args.sampler, "steps": args.steps,
                       "checkpoint_steps": models.motion_model.generator.config.n_diff_steps}, CLI)
    lp = models.liveportrait
    if args.dtype == "auto":
        _log(f"precision: {dtype_name(lp.dtype)} (auto: {auto_dtype(lp.device)[1]})", args.quiet)
    _log(f"models: {lp!r}" + (f", {models.motion_model!r}" if models.motion_model else "")
         + (f", detector {getattr(models.detector, 'name', 'none')}" if models.detector else ""), args.quiet)

    motion_bar = TqdmProgress("motion", not args.quiet)
    try:
        with torch.inference_mode():
            if sample:
                features = encode_audio(wave, models.motion_model, leading_silence=options.sampling.leading_silence)
                motions["speech"] = sample_motion(models.motion_model, features, options.sampling, motion_bar)
                _log(f"motion: {motions['speech']!r}", args.quiet)
            if drive is not None:
                motions["video"] = motion_from_video(lp, drive[0], models.detector, fps=drive[1],
                                                     batch_size=max(args.batch_size or 0, 8), progress=motion_bar)
                _log(f"video motion: {motions['video']!r}", args.quiet)
            parts = {k: motions[plan[k]] for k in ("head", "lips") if plan[k] and plan[k] != plan["expression"]}
            motion = apply_blinks(mix(motions[plan["expression"]], **parts), blinks)
            job = prepare_animation(image, wave, lp, None, models.detector, options, motion=motion)
    finally:
        motion_bar.close()
    _notes(job.reference[0].notes)
    kept = job.audio.plan.kept_frames(options.sampling.lag_compensation) if job.audio is not None else None
    if kept is not None and kept.stop - kept.start != job.motion.n_frames:
        _notes([f"the motion has {job.motion.n_frames} frames, the speech needs {kept.stop - kept.start}; "
                "the video follows the motion."])
    if save_motion is not None:
        job.motion.save(save_motion)
        _log(f"motion saved to {save_motion}", args.quiet)
    if outputs.get("export_template") is not None:
        write_driving_template(job.motion, outputs["export_template"])
        _log(f"driving template written to {outputs['export_template']}", args.quiet)
    if outputs.get("motion_preview") is not None:
        speech = job.audio
        # the motion starts with the leading silence only in the reference's timing
        lagged = speech is not None and not options.sampling.lag_compensation
        delay = speech.plan.leading_pad / speech.sample_rate if lagged else 0.0
        plot = render_motion_preview(job.motion, None if speech is None else speech.waveform,
                                     SAMPLE_RATE if speech is None else speech.sample_rate, audio_delay=delay)
        _write_png(plot, outputs["motion_preview"])
        _log(f"motion preview drawn to {outputs['motion_preview']}", args.quiet)

    w, h = job.frame_size(lp)
    batch = options.batch_size or default_batch_size(lp.device)
    _log(f"rendering {job.n_frames} frames {w}x{h} on {lp.device} (batch {batch})", args.quiet)
    render_bar = TqdmProgress("render", not args.quiet)
    try:
        with torch.inference_mode():
            video = job.write_video(lp, out, crf=args.crf, progress=render_bar, overwrite=args.overwrite)
    finally:
        render_bar.close()
    _log(f"wrote {out} ({video.n_frames} frames, {time.perf_counter() - t0:.1f} s)", args.quiet)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with stop_cleanly_on_signals():
            return run(args)
    except JoyVASAError as exc:
        print(f"error: {exc.for_cli()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Stopped as exc:
        name = signal.Signals(exc.signum).name
        print(f"\nstopped by {name}; no video was written.", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("\ncancelled; no video was written.", file=sys.stderr)
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
