"""What the running hardware can do, and every precision/placement choice made from it (the one place that decides).

A CPU computes bf16 natively only with AVX-512 BF16 or AMX *and* a torch that dispatches its AVX-512 kernels there
(``torch.backends.cpu.get_cpu_capability()``; ``ATEN_CPU_CAPABILITY=avx2`` lowers it, as an AVX2-only CPU has it).
Elsewhere bf16 is emulated: about 38 times slower than fp32 for the renderer (issue 17, an AVX2 EPYC). A CUDA GPU
has bf16 from compute capability 8.0 (Ampere); older ones (GTX 10/16, T4, V100) get fp32: fp16 overflows to black
frames in LivePortrait's decoder there (reported by ComfyUI-LivePortraitKJ users on a GTX 1650). Apple's MPS runs
fp32, and the one op LivePortrait needs that has no MPS kernel (3-D ``grid_sample``) runs on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import torch

# ops without an MPS kernel in torch (LivePortrait's own README runs with PYTORCH_ENABLE_MPS_FALLBACK=1 for them);
# the warping network's trilinear sampling asks :func:`runs_on_cpu_instead` before each call
MPS_MISSING_OPS = ("aten::grid_sampler_3d",)
MIN_CUDA_BF16 = (8, 0)


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as torch will use it: its vector capability and the bf16 instructions it has."""

    capability: str  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...
    avx512_bf16: bool
    amx: bool

    @property
    def native_bf16(self) -> bool:
        return "AVX512" in self.capability.upper() and (self.avx512_bf16 or self.amx)

    def describe(self) -> str:
        extras = [name for name, on in (("AVX-512 BF16", self.avx512_bf16), ("AMX", self.amx)) if on]
        return f"CPU {self.capability}" + (f" + {', '.join(extras)}" if extras else "") + (
            "" if self.native_bf16 else " (no native bf16)")


@dataclass(frozen=True)
class DeviceInfo:
    """What the precision choice needs to know of a device (tests build these for GPUs this machine lacks)."""

    type: str  # cpu, cuda, mps
    name: str = ""
    cuda_capability: tuple[int, int] | None = None
    cpu: CpuInfo | None = None


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """The running CPU (torch's own detection, /proc/cpuinfo flags where torch lacks the check)."""
    flags = _cpu_flags()

    def has(check: str, flag: str) -> bool:
        fn = getattr(torch.cpu, check, None)
        return bool(fn()) if fn is not None else flag in flags

    native_ok = torch.backends.mkldnn.is_available()
    return CpuInfo(capability=torch.backends.cpu.get_cpu_capability(),
                   avx512_bf16=native_ok and has("_is_avx512_bf16_supported", "avx512_bf16"),
                   amx=native_ok and has("_is_amx_tile_supported", "amx_tile"))


def device_info(device: torch.device) -> DeviceInfo:
    """The running ``device``'s :class:`DeviceInfo`."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DeviceInfo("cuda", torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index)))
    if device.type == "cpu":
        return DeviceInfo("cpu", cpu=cpu_info())
    return DeviceInfo(device.type)


def choose_dtype(info: DeviceInfo) -> tuple[torch.dtype, str]:
    """The fastest precision that keeps the picture on ``info``'s device, and why (one line for the log)."""
    if info.type == "cpu" and info.cpu is not None:
        if info.cpu.native_bf16:
            return torch.bfloat16, f"native bf16 on this {info.cpu.describe()}"
        return torch.float32, f"fp32: {info.cpu.describe()}, bf16 would be emulated (tens of times slower)"
    if info.type == "cuda" and info.cuda_capability is not None:
        label = f"{info.name or 'CUDA GPU'} (compute capability {info.cuda_capability[0]}.{info.cuda_capability[1]})"
        if info.cuda_capability >= MIN_CUDA_BF16:
            return torch.bfloat16, f"native bf16 on this {label}"
        return torch.float32, f"fp32: no bf16 on this {label}, and fp16 can overflow to black frames"
    if info.type == "mps":
        return torch.float32, f"fp32 on Apple MPS ({', '.join(MPS_MISSING_OPS)} runs on the CPU)"
    return torch.float32, f"fp32 on {info.type}"


def auto_device() -> torch.device:
    """CUDA when present, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def runs_on_cpu_instead(op: str, device: torch.device) -> bool:
    """Whether ``op`` must be computed on the CPU for tensors on ``device`` (no kernel there, no global fallback)."""
    return device.type == "mps" and op in MPS_MISSING_OPS and os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK") != "1"
