"""CPU benchmark of the five LivePortrait networks (official widths, random weights): fp32 vs bf16 autocast.

Prints, per network, the time per frame, the achieved GFLOP/s (FLOPs counted by torch's FlopCounterMode on the meta
device, so counting is free), the peak RSS growth while it ran, and the bf16/fp32 ratios with the bf16 output's
max deviation from fp32. Timings are reported, never asserted: the machine may be shared.

    python bench/bench_liveportrait.py                       # 1 warm-up + 2 timed calls, batch 1
    python bench/bench_liveportrait.py --frames 4 --batch 2  # W and G on 2 frames per call
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from joyvasa_core.liveportrait import build_networks  # noqa: E402

NETWORKS = ("F", "M", "W", "G", "S")
FULL_NAMES = {
    "F": "appearance_feature_extractor",
    "M": "motion_extractor",
    "W": "warping_module",
    "G": "spade_generator",
    "S": "stitching_retargeting_module",
}


class PeakRSS:
    """Samples this process's RSS in a thread; reports the peak above the level at entry."""

    def __init__(self, interval: float = 0.002) -> None:
        self.proc = psutil.Process(os.getpid())
        self.interval = interval
        self.base = self.peak = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def make_inputs(name: str, batch: int, gen: torch.Generator, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    """Plausible inputs: images in [0,1], keypoints inside the warping volume, one source for W's B frames."""

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen).to(device)

    if name in ("F", "M"):
        return (rand(batch, 3, 256, 256),)
    if name == "W":
        kp_s = rand(1, 21, 3) * 1.4 - 0.7
        kp_d = kp_s + (rand(batch, 21, 3) - 0.5) * 0.1
        return (torch.randn(1, 32, 16, 64, 64, generator=gen).to(device), kp_s, kp_d)
    if name == "G":
        return (torch.randn(batch, 256, 64, 64, generator=gen).to(device),)
    kp_s = rand(1, 21, 3) * 1.4 - 0.7
    return (kp_s, kp_s + (rand(batch, 21, 3) - 0.5) * 0.1)


def runner(name: str, net: torch.nn.Module) -> Callable[..., torch.Tensor]:
    """One call of the network as the pipeline uses it, returning its main output as one tensor."""
    if name == "M":
        return lambda x: torch.cat([v.float() for v in net(x).values()], dim=1)
    if name == "W":
        return lambda f, s, d: net(f, kp_source=s, kp_driving=d)["out"]
    if name == "S":

        def mlps(x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
            b = x_d.shape[0]
            lip = net.lip(x_s, torch.full((b, 2), 0.25, device=x_s.device))
            eye = net.eye(x_s, torch.full((b, 3), 0.3, device=x_s.device))
            return torch.cat([net.stitch(x_s, x_d), lip.flatten(1), eye.flatten(1)], dim=1)

        return mlps
    return lambda *a: net(*a)


def count_flops(name: str, batch: int) -> float:
    """FLOPs of one call, counted on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        net = build_networks()[FULL_NAMES[name]]
        args = make_inputs(name, batch, torch.Generator(), device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        runner(name, net)(*args)
    return float(counter.get_total_flops())


def time_calls(fn: Callable[[], torch.Tensor], warmup: int, repeats: int) -> tuple[float, float, torch.Tensor]:
    """(best seconds, mean seconds, last output) over ``repeats`` timed calls after ``warmup`` untimed ones."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), sum(times) / len(times), out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2, help="timed calls per network and dtype (default 2)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    ap.add_argument("--batch", type=int, default=1, help="frames per call (W/G/S: B frames, one source)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads (default 2)")
    ap.add_argument("--networks", default="".join(NETWORKS), help="subset, e.g. WG (default FMWGS)")
    ap.add_argument("--no-bf16", action="store_true", help="fp32 only")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n for n in NETWORKS if n in args.networks.upper()]
    dtypes = ["fp32"] if args.no_bf16 else ["fp32", "bf16"]

    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, batch {args.batch}, {args.warmup} warm-up + "
        f"{args.frames} timed calls; load average {os.getloadavg()[0]:.2f}"
    )
    t_start = time.perf_counter()
    with torch.device("cpu"):
        nets = build_networks()
    rows = []
    gen = torch.Generator().manual_seed(0)
    for name in names:
        net = nets[FULL_NAMES[name]]
        if hasattr(net, "fold_spectral_norm"):
            net.fold_spectral_norm()
        inputs = make_inputs(name, args.batch, gen)
        flops = count_flops(name, args.batch)
        fn = runner(name, net)
        result = {"name": name, "flops_per_frame": flops / args.batch}
        outputs = {}
        for dt in dtypes:
            # The MLPs always run in fp32 in the reference, so S has no bf16 variant.
            ctx = (
                torch.autocast("cpu", dtype=torch.bfloat16)
                if dt == "bf16" and name != "S"
                else contextlib.nullcontext()
            )

            def call(ctx=ctx, fn=fn, inputs=inputs) -> torch.Tensor:
                with torch.inference_mode(), ctx:
                    return fn(*inputs)

            with PeakRSS() as mem:
                best, mean, out = time_calls(call, args.warmup, args.frames)
            outputs[dt] = out.float()
            result[dt] = {"best": best / args.batch, "mean": mean / args.batch, "mem": mem.growth_mib}
        if "bf16" in outputs:
            result["bf16_dev"] = float((outputs["bf16"] - outputs["fp32"]).abs().max())
        rows.append(result)

    print()
    head = f"{'net':<4}{'GFLOP/frame':>12}{'fp32 ms':>10}{'fp32 mean':>11}{'GFLOP/s':>9}{'peak MiB':>10}"
    if "bf16" in dtypes:
        head += f"{'bf16 ms':>10}{'bf16 mean':>11}{'GFLOP/s':>9}{'peak MiB':>10}{'bf16/fp32':>11}{'max|dev|':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        gf = r["flops_per_frame"] / 1e9
        line = f"{r['name']:<4}{gf:>12.3f}"
        for dt in dtypes:
            d = r[dt]
            line += f"{d['best'] * 1e3:>10.1f}{d['mean'] * 1e3:>11.1f}{gf / d['best']:>9.1f}{d['mem']:>10.0f}"
        if "bf16" in dtypes:
            line += f"{r['bf16']['best'] / r['fp32']['best']:>11.2f}{r['bf16_dev']:>10.2e}"
        print(line)
    per_frame = [n for n in ("M", "W", "G", "S") if n in names]
    if per_frame:
        for dt in dtypes:
            total = sum(r[dt]["best"] for r in rows if r["name"] in per_frame)
            print(f"per animated frame ({'+'.join(per_frame)}), {dt}: {total * 1e3:.0f} ms (best)")
    print(
        f"(ms = best per frame, mean = mean per frame; peak MiB = RSS growth while timing; "
        f"max|dev| = bf16 vs fp32 on the main output; total run {time.perf_counter() - t_start:.0f} s)"
    )


if __name__ == "__main__":
    main()
