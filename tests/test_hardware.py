"""The precision and placement choices made from the hardware (joyvasa_core.hardware), for devices this machine
lacks given by their properties, and for the running CPU as torch reports it (``ATEN_CPU_CAPABILITY`` lowers it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from joyvasa_core.hardware import CpuInfo, DeviceInfo, choose_dtype, cpu_info, runs_on_cpu_instead
from joyvasa_core.loading import auto_dtype

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("cpu", "dtype"), [
    (CpuInfo("AVX512", avx512_bf16=True, amx=False), torch.bfloat16),  # EPYC Genoa, Ice Lake+ with AVX-512 BF16
    (CpuInfo("AVX512", avx512_bf16=False, amx=True), torch.bfloat16),  # Sapphire Rapids' AMX
    (CpuInfo("AVX512", avx512_bf16=False, amx=False), torch.float32),  # Skylake-X: AVX-512 without bf16
    (CpuInfo("AVX2", avx512_bf16=True, amx=False), torch.float32),  # torch held to AVX2: the bf16 kernels never run
    (CpuInfo("AVX2", avx512_bf16=False, amx=False), torch.float32),  # every AVX2 desktop and laptop
    (CpuInfo("DEFAULT", avx512_bf16=False, amx=False), torch.float32),  # ARM, old x86
])
def test_cpu_precision_follows_native_bf16(cpu, dtype):
    chosen, why = choose_dtype(DeviceInfo("cpu", cpu=cpu))
    assert chosen == dtype
    assert cpu.capability in why and why.startswith("native bf16") == (dtype == torch.bfloat16)


@pytest.mark.parametrize(("name", "capability", "dtype"), [
    ("NVIDIA GeForce GTX 1650", (7, 5), torch.float32),  # black frames in fp16 reported there
    ("Tesla T4", (7, 5), torch.float32),
    ("Tesla V100-SXM2-16GB", (7, 0), torch.float32),
    ("NVIDIA GeForce GTX 1080", (6, 1), torch.float32),
    ("NVIDIA A100-SXM4-40GB", (8, 0), torch.bfloat16),
    ("NVIDIA H100 80GB HBM3", (9, 0), torch.bfloat16),
])
def test_cuda_precision_from_compute_capability(name, capability, dtype):
    chosen, why = choose_dtype(DeviceInfo("cuda", name, capability))
    assert chosen == dtype and name in why and f"{capability[0]}.{capability[1]}" in why


def test_mps_runs_fp32_and_names_the_op_it_sends_to_the_cpu(monkeypatch):
    chosen, why = choose_dtype(DeviceInfo("mps"))
    assert chosen == torch.float32 and "aten::grid_sampler_3d" in why
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK", raising=False)
    mps = torch.device("mps")
    assert runs_on_cpu_instead("aten::grid_sampler_3d", mps)
    assert not runs_on_cpu_instead("aten::conv2d", mps)
    assert not runs_on_cpu_instead("aten::grid_sampler_3d", torch.device("cpu"))
    monkeypatch.setenv("PYTORCH_ENABLE_MPS_FALLBACK", "1")  # torch's own fallback takes it then
    assert not runs_on_cpu_instead("aten::grid_sampler_3d", mps)


def test_running_cpu_decides_auto():
    info = cpu_info()
    assert info.capability == torch.backends.cpu.get_cpu_capability()
    assert auto_dtype(torch.device("cpu"))[0] == (torch.bfloat16 if info.native_bf16 else torch.float32)


def test_an_avx2_torch_gets_fp32_whatever_the_flags():
    """ATEN_CPU_CAPABILITY=avx2 makes torch dispatch as on an AVX2-only CPU: the choice follows it."""
    code = ("import torch; from joyvasa_core.hardware import cpu_info; from joyvasa_core.loading import auto_dtype;"
            "print(cpu_info().capability, auto_dtype(torch.device('cpu'))[0])")
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["AVX2", "torch.float32"]
