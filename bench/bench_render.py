"""Rendering speed, side by side in one run: the reference-equivalent per-frame loop against our render path.

The reference-equivalent loop is what the reference does for every frame: batch 1, fp32, default memory format,
W then G, the whole source volume passed to W every time (its compression recomputed, the volume repeated for the
22 motions), SPADE's label map resized and normalised per block: ``joyvasa_core.liveportrait.plain``, written
from the networks' own layers (plain ``nn.Conv*`` / ``BatchNorm`` / folded spectral-norm weights), so it stays
the reference's op order whatever our forward does. Our side is ``pipeline.render_frames`` as the pipeline runs it,
in fp32 and in bf16.

Both run on the same fill-rule weights (official widths, or ``--small``), the same source feature volume and the same
driving keypoints (interpolated between the fixture's two driving frames), in interleaved rounds; the speed-ups are
medians of per-round ratios. Accuracy is against the reference-equivalent fp32 output: max |difference| and PSNR.
Then the whole job (paste-back into a 1024x1024 photo, uint8, H.264 encode) against the render loop alone.
Prints figures, never asserts timings: the machine may be shared.

    python bench/bench_render.py                    # official widths, 3 rounds of 2 frames per variant
    python bench/bench_render.py --small --rounds 5 # a quick look at reduced widths
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors import safe_open

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_liveportrait import PeakRSS  # noqa: E402

from joyvasa_core.face.pasteback import PasteBack  # noqa: E402
from joyvasa_core.hardware import cpu_info  # noqa: E402
from joyvasa_core.keypoints import KeypointOptions, keypoint_info_from_heads  # noqa: E402
from joyvasa_core.liveportrait import LivePortraitConfig, build_networks  # noqa: E402
from joyvasa_core.liveportrait.plain import render_plain  # noqa: E402
from joyvasa_core.pipeline import render_frames  # noqa: E402
from joyvasa_core.types import Appearance, LivePortraitModels, TargetKeypoints  # noqa: E402
from joyvasa_core.video import VideoWriter  # noqa: E402


def fixture_dir() -> Path:
    env = os.environ.get("JOYVASA_FIXTURE_DIR")
    return Path(env) if env else REPO / "tests" / "fixtures"


def load_fill_rule():
    import importlib.util

    spec = importlib.util.spec_from_file_location("joyvasa_fill_rule", fixture_dir() / "fill_rule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------------------------------
# Set-up


class Setup:
    """Fill-rule networks of one fixture, its source feature and keypoints, and ``n`` driving frames."""

    def __init__(self, small: bool) -> None:
        name = "liveportrait_small.safetensors" if small else "liveportrait_full.safetensors"
        with safe_open(str(fixture_dir() / name), "pt") as f:
            meta = json.loads(f.metadata()["json"])
            tensors = {k: f.get_tensor(k) for k in ("src.img256", "M.x_s", "kp.b.x_d")}
        self.name = name
        self.nets = build_networks(LivePortraitConfig.from_dict(meta["config"]))
        rule = load_fill_rule()
        with torch.no_grad():
            for key, net in self.nets.items():
                filled = rule.fill_state_dict(net.state_dict(), meta["fill"]["seed"],
                                              skip=tuple(meta["fill"]["skip"][key]))
                net.load_state_dict(filled, strict=True)
                net.eval().requires_grad_(False)
                if hasattr(net, "fold_spectral_norm"):
                    net.fold_spectral_norm()
        self.image = tensors["src.img256"].permute(2, 0, 1)[None].float() / 255.0
        with torch.inference_mode():
            self.feature = self.nets["appearance_feature_extractor"](self.image)
            self.info = keypoint_info_from_heads(self.nets["motion_extractor"](self.image))
        self.x_s = tensors["M.x_s"].float()
        self.kp_ends = tensors["kp.b.x_d"].float()

    def driving(self, n: int) -> torch.Tensor:
        """``n`` frames moving linearly between the fixture's two driving frames."""
        w = torch.linspace(0, 1, n).view(n, 1, 1)
        return self.kp_ends[:1] * (1 - w) + self.kp_ends[1:2] * w

    def models(self, dtype: torch.dtype) -> LivePortraitModels:
        n = self.nets
        return LivePortraitModels(appearance=n["appearance_feature_extractor"], motion_extractor=n["motion_extractor"],
                                  warping=n["warping_module"], spade=n["spade_generator"],
                                  stitching=n["stitching_retargeting_module"], device=torch.device("cpu"),
                                  dtype=dtype)

    def appearance(self, models: LivePortraitModels) -> Appearance:
        """As ``pipeline.extract_appearance`` makes it: W's source compression in the models' precision."""
        with torch.inference_mode(), models.autocast():
            compressed = models.warping.compress_source(self.feature).float()
        return Appearance(feature=self.feature, info=self.info, x_s=self.x_s, compressed=compressed)

    def keypoints(self, x_d: torch.Tensor) -> TargetKeypoints:
        return TargetKeypoints(x_d=x_d, x_s=self.x_s, options=KeypointOptions.web(), fps=25)

    def paste_back(self, side: int = 1024) -> PasteBack:
        """The 512 crop pasted, slightly rotated, into a ``side`` x ``side`` photo (the source upscaled)."""
        photo = cv2.resize((self.image[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8), (side, side))
        angle = math.radians(5.0)
        scale = 0.9 * side / 1024
        c, s = scale * math.cos(angle), scale * math.sin(angle)
        M = np.array([[c, -s, 0.22 * side], [s, c, 0.18 * side], [0, 0, 1]], dtype=np.float32)
        return PasteBack(photo, M, crop_size=512)


def ours(setup: Setup, models: LivePortraitModels, appearance: Appearance, x_d: torch.Tensor,
         batch: int | None) -> torch.Tensor:
    kw = {} if batch is None else {"batch_size": batch}
    return torch.cat(list(render_frames(models, appearance, setup.keypoints(x_d), **kw)))


def psnr(a: torch.Tensor, ref: torch.Tensor) -> float:
    mse = float(((a.float() - ref.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def timed(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor, float]:
    with PeakRSS() as mem, torch.inference_mode():
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
    return dt, out, mem.growth_mib


def whole_job(setup: Setup, models: LivePortraitModels, appearance: Appearance, x_d: torch.Tensor,
              batch: int | None, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds of the render loop alone and of the whole job (paste-back + uint8 + H.264 in the writer thread) on
    the same frames, in interleaved rounds."""
    kw = {} if batch is None else {"batch_size": batch}
    kps = setup.keypoints(x_d)
    paster = setup.paste_back()
    alone, job = [], []
    with torch.inference_mode(), tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            t0 = time.perf_counter()
            for _ in render_frames(models, appearance, kps, **kw):
                pass
            alone.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with VideoWriter(Path(tmp) / f"job{r}.mp4", fps=25) as writer:
                for chunk in render_frames(models, appearance, kps, paste_back=paster, as_uint8=True, **kw):
                    writer.write(chunk)
            job.append(time.perf_counter() - t0)
    return alone, job


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="reduced widths (liveportrait_small), a quick look")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--frames", type=int, default=2, help="frames per variant per round (default 2)")
    ap.add_argument("--batch", type=int, default=None, help="our batch size (default: the pipeline's)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads (default 2)")
    ap.add_argument("--job-frames", type=int, default=4, help="frames of the whole-job run (0 skips it)")
    ap.add_argument("--bf16", action="store_true", help="measure bf16 even where it is emulated (tens of times "
                    "slower than fp32 there; by default only a CPU with native bf16 runs it)")
    args = ap.parse_args(argv)
    cpu = cpu_info()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    setup = Setup(args.small)
    print(f"torch {torch.__version__}, {args.threads} threads, {cpu.describe()}, {setup.name}, {args.rounds} rounds "
          f"x {args.frames} frames, load average {os.getloadavg()[0]:.2f}")

    nets = setup.nets
    warping, spade = nets["warping_module"], nets["spade_generator"]
    variants = {"fp32": torch.float32}
    if cpu.native_bf16 or args.bf16:
        variants["bf16"] = torch.bfloat16
    else:
        print("bf16 skipped: emulated on this CPU (--bf16 measures it anyway)")
    models = {k: setup.models(dt) for k, dt in variants.items()}
    appearances = {k: setup.appearance(m) for k, m in models.items()}
    x_d = setup.driving(args.frames)
    runs: dict[str, Callable[[], torch.Tensor]] = {
        "reference fp32": lambda: render_plain(warping, spade, setup.feature, setup.x_s, x_d),
        **{f"ours {k}": (lambda k=k: ours(setup, models[k], appearances[k], x_d, args.batch)) for k in variants},
    }
    # One untimed pass of each: first-call costs (weight preparation, allocator growth) are not per frame.
    outputs = {name: timed(fn)[1] for name, fn in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    mems: dict[str, float] = {name: 0.0 for name in runs}
    names = list(runs)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            dt, _, mem = timed(runs[name])
            times[name].append(dt / args.frames)
            mems[name] = max(mems[name], mem)

    ref = outputs["reference fp32"]
    print()
    print(f"{'variant':<16}{'s/frame (median)':>18}{'speed-up (median)':>19}{'max|diff|':>11}{'PSNR dB':>9}"
          f"{'peak MiB':>10}")
    summary = {}
    for name in names:
        ratios = [a / b for a, b in zip(times["reference fp32"], times[name], strict=True)]
        speed = statistics.median(ratios)
        diff = float((outputs[name].float() - ref).abs().max())
        p = psnr(outputs[name], ref)
        summary[name] = (speed, diff, p)
        print(f"{name:<16}{statistics.median(times[name]):>18.2f}{speed:>18.2f}x{diff:>11.1e}{p:>9.1f}"
              f"{mems[name]:>10.0f}")
    print("(per-round speed-ups: " + "; ".join(
        f"{n} " + ", ".join(f"{a / b:.2f}" for a, b in zip(times['reference fp32'], times[n], strict=True))
        for n in names[1:]) + ")")

    if args.job_frames > 0:
        key = max(variants, key=lambda k: summary[f"ours {k}"][0])
        n = args.job_frames
        alone, job = whole_job(setup, models[key], appearances[key], setup.driving(n), args.batch, args.rounds)
        ratio = statistics.median(a / j for a, j in zip(alone, job, strict=True))
        print(f"whole job ({key}, {n} frames, paste-back into 1024x1024 + uint8 + H.264): "
              f"{n / statistics.median(job):.3f} frames/s; render loop alone {n / statistics.median(alone):.3f} "
              f"frames/s; job/render {ratio:.2f} (median of {args.rounds} interleaved rounds)")
    print(f"(load average {os.getloadavg()[0]:.2f}; total run {time.perf_counter() - t_start:.0f} s)")
    s32, d32, _ = summary["ours fp32"]
    line = f"speedup fp32 {s32:.2f}x maxdiff {d32:.1e}"
    if "bf16" in variants:
        s16, _, p16 = summary["ours bf16"]
        line += f", bf16 {s16:.2f}x psnr {p16:.1f} dB"
    print(line)


if __name__ == "__main__":
    main()
