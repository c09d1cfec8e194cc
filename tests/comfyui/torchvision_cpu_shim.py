"""Lets PyPI's CUDA-only torchvision wheel import on a CPU torch (test venv only, installed via a ``.pth`` line).

ComfyUI imports torchvision at start-up (``comfy/ldm/cascade/stage_c_coder.py``). Every torchvision wheel on PyPI
links its ``_C`` ops library against ``libtorch_cuda``, which a CPU torch lacks, so the library fails to load, and
``torchvision/_meta_registrations.py`` then dies with "operator torchvision::nms does not exist" because it registers
fake kernels for ``nms``/``qnms`` unconditionally. This one-shot finder runs just before the first torchvision
import and, only when ``_C`` really cannot load, defines those two schemas. Transforms, models and io then work;
``torchvision.ops.nms`` raises torchvision's own "Couldn't load custom C++ ops" error. Never shipped with the pack.
"""

from __future__ import annotations

import importlib.util
import os
import sys


class TorchvisionCpuShim:
    """``sys.meta_path`` finder that patches the op registry once and then gets out of the way."""

    library = None  # keeps the torch.library fragment alive for the interpreter's lifetime

    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)
        try:
            self._define_missing_ops()
        except Exception as exc:  # an import hook must never break the interpreter
            print(f"torchvision_cpu_shim: {exc}", file=sys.stderr)
        return None  # the normal finders import torchvision itself

    @classmethod
    def _define_missing_ops(cls) -> None:
        import torch

        spec = importlib.util.find_spec("torchvision")
        if spec is None or not spec.submodule_search_locations:
            return
        package_dir = spec.submodule_search_locations[0]
        ops_libs = [f for f in os.listdir(package_dir) if f.startswith("_C.") and f.endswith((".so", ".pyd"))]
        if ops_libs:
            try:
                torch.ops.load_library(os.path.join(package_dir, ops_libs[0]))
                return  # the real ops load (a CPU or matching CUDA build): nothing to patch
            except (OSError, ImportError, RuntimeError):
                pass
        cls.library = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            cls.library.define(op + "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


sys.meta_path.insert(0, TorchvisionCpuShim())
