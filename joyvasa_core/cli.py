"""Command line: ``python -m joyvasa_core --image portrait.png --audio speech.wav --models models --out talking.mp4``.

User errors (missing or wrong files, no face, silent audio, an existing output) print one line and exit with code 2,
without a traceback; Ctrl-C stops at once and leaves no partial file (exit 130).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from .errors import FaceInputError, JoyVASAError

EXIT_USER_ERROR = 2
EXIT_CANCELLED = 130


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m joyvasa_core",
        description="Make a portrait (or an animal face) talk from speech: JoyVASA motion + LivePortrait rendering.",
    )
    p.add_argument("--image", required=True, help="reference portrait (png/jpg)")
    p.add_argument("--audio", help="speech (wav/flac/mp3/m4a...); optional with --motion (then the video is silent)")
    p.add_argument("--models", default="models", help="models folder holding liveportrait/ and joyvasa/ "
                   "(ComfyUI's models folder or the reference's pretrained_weights) [models]")
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
    p.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16", "auto"),
                   help="compute precision of the image networks [fp32]")
    p.add_argument("--no-crop", action="store_true", help="animate the whole image resized to 256 (no face crop)")
    p.add_argument("--no-pasteback", action="store_true", help="output the 512x512 face crop")
    p.add_argument("--no-stitching", action="store_true", help="no stitching (also disables paste-back)")
    p.add_argument("--batch-size", type=int, default=4, help="frames per warp/render batch [4]")
    p.add_argument("--crf", type=int, default=18, help="x264 quality, lower is better (reference 18) [18]")
    p.add_argument("--detector", choices=("auto", "official", "bundled"), default="auto",
                   help="face detector: official ONNX files when present, else the bundled one [auto]")
    p.add_argument("--save-motion", metavar="FILE", help="also save the sampled motion (.safetensors)")
    p.add_argument("--motion", metavar="FILE", help="reuse a saved motion instead of sampling one")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def read_image(path: str):
    """RGB(A) uint8/uint16 array of an image file (alpha handled by the reference loader's policy)."""
    import cv2
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise FaceInputError(f"reference image {p}: no such file; check the path.")
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise FaceInputError(f"reference image {p}: cannot be read as an image (png, jpg, webp, bmp, tiff...).")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    import torch

    from .audio.io import load_audio
    from .models import load_models
    from .motion.sequence import MotionSequence
    from .pipeline import animate_options, prepare_animation
    from .video import VideoWriter, check_output_path

    t0 = time.perf_counter()
    out = check_output_path(args.out, args.overwrite)
    if args.audio is None and args.motion is None:
        raise JoyVASAError("give --audio (speech to animate), or --motion to reuse a saved motion.")
    if args.batch_size < 1:
        raise JoyVASAError(f"--batch-size must be at least 1, got {args.batch_size}.")
    image = read_image(args.image)
    wave = load_audio(args.audio) if args.audio else None
    motion = MotionSequence.load(args.motion) if args.motion else None

    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    sampling: dict[str, Any] = {"seed": seed, "scheduler": args.sampler}
    if args.cfg_scale is not None:
        sampling["cfg_scale"] = args.cfg_scale
    if args.steps is not None:
        sampling["num_steps"] = args.steps
    try:
        options = animate_options(
            preset=args.preset, animal=args.animal, crop=False if args.no_crop else None,
            stitching=False if args.no_stitching else None, paste_back=False if args.no_pasteback else None,
            batch_size=args.batch_size, sampling=sampling,
        )
    except (TypeError, ValueError) as exc:
        raise JoyVASAError(f"options: {exc}") from None

    models = load_models(args.models, animal=args.animal, device=args.device, dtype=args.dtype,
                         detector=args.detector, need_motion=motion is None,
                         need_detector=options.reference.crop != "whole" or options.keypoints.normalize_lip)
    lp = models.liveportrait
    _log(f"models: {lp!r}" + (f", {models.motion!r}" if models.motion else "")
         + (f", detector {getattr(models.detector, 'name', 'none')}" if models.detector else ""), args.quiet)

    motion_bar = TqdmProgress("motion", not args.quiet)
    try:
        with torch.inference_mode():
            job = prepare_animation(image, wave, lp, models.motion, models.detector, options, motion=motion,
                                    progress=motion_bar)
    finally:
        motion_bar.close()
    if motion is None:
        _log(f"motion: {job.motion!r}", args.quiet)
    elif job.audio is not None and job.audio.n_frames != job.motion.n_frames:
        _log(f"note: the reused motion has {job.motion.n_frames} frames, the speech needs {job.audio.n_frames}; "
             "the video follows the motion.", args.quiet)
    if args.save_motion:
        job.motion.save(args.save_motion)
        _log(f"motion saved to {args.save_motion}", args.quiet)

    w, h = job.frame_size(lp)
    _log(f"rendering {job.n_frames} frames {w}x{h} on {lp.device} (batch {options.batch_size})", args.quiet)
    render_bar = TqdmProgress("render", not args.quiet)
    audio = job.audio.waveform if job.audio is not None else None
    try:
        with torch.inference_mode(), VideoWriter(out, fps=job.fps, crf=args.crf, audio=audio,
                                                  overwrite=args.overwrite) as writer:
            for chunk in job.frames(lp, render_bar, as_uint8=True):
                writer.write(chunk)
    finally:
        render_bar.close()
    _log(f"wrote {out} ({writer.n_frames} frames, {time.perf_counter() - t0:.1f} s)", args.quiet)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except JoyVASAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("\ncancelled; no output was written.", file=sys.stderr)
        return EXIT_CANCELLED


if __name__ == "__main__":
    sys.exit(main())
