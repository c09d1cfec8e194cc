"""Loader nodes: LivePortrait networks, the JoyVASA motion generator and a face detector, from ComfyUI's models
folders. Returned objects stay in ComfyUI's cache while the node is in the graph, so models load once from disk;
the networks join ComfyUI's memory manager (``memory``), which moves them to the device when a node needs them."""

from __future__ import annotations

import logging

import comfy.model_management
import folder_paths

from ..joyvasa_core.checkpoints.joyvasa import GENERATOR_FILE, TEMPLATE_FILE
from ..joyvasa_core.download import feature_fingerprint, fingerprint, locate_or_download
from ..joyvasa_core.loading import (
    auto_dtype,
    bundled_face_detector,
    find_joyvasa_files,
    load_face_detector,
    load_liveportrait,
    load_motion_model,
    official_detector_dirs,
    resolve_device,
    resolve_dtype,
)
from ..joyvasa_core.model_catalog import MOTION_GENERATOR, liveportrait_feature
from ..joyvasa_core.types import dtype_name
from .folders import (
    INSIGHTFACE,
    JOYVASA,
    LIVEPORTRAIT,
    MOTION_CHECKPOINT_EXTS,
    TEMPLATE_EXTS,
    list_files,
    model_path,
    model_path_or_none,
    model_roots,
)
from .memory import offload_device, register
from .progress import ComfyDownloadProgress
from .schema import FaceDetector, JoyVASANode, LivePortrait, MotionModel, io

DEVICES = ["auto", "cpu", "cuda"]
DTYPES = ["auto", "fp32", "fp16", "bf16"]
VARIANTS = ["human", "animal_v1.1", "animal_v1.0"]
DETECTORS_ALWAYS = ["auto", "bundled_short_range", "bundled_full_range"]
OFFICIAL_DETECTOR = "official_insightface"
DOWNLOAD, NEVER_DOWNLOAD = "download missing files", "never download"


def download_input() -> io.Combo.Input:
    return io.Combo.Input("download", options=[DOWNLOAD, NEVER_DOWNLOAD], default=DOWNLOAD, tooltip=(
        "Missing model files are fetched from the Hugging Face Hub into ComfyUI's models folder (progress per file; "
        "HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE are honoured). 'never download' stops with an error that lists each "
        "missing file, its URL and its folder."))


def comfy_device(name: str):
    """``auto`` is ComfyUI's own choice (so ``--cpu`` and ``--cuda-device`` are honoured)."""
    if name == "auto":
        return comfy.model_management.get_torch_device()
    return resolve_device(name)


class JoyVASALivePortraitLoader(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            io.Combo.Input("variant", options=VARIANTS, default="human", tooltip="human portraits, or the animal "
                           "weights (v1.1 is the newer release)."),
            io.Combo.Input("device", options=DEVICES, default="auto", tooltip="auto = ComfyUI's device."),
            io.Combo.Input("dtype", options=DTYPES, default="auto", tooltip="auto = bf16 where the GPU or CPU has "
                           "native bf16 (AMX / AVX-512 BF16 CPUs: several times faster, same picture), else fp32; the "
                           "console says which. fp16 can give black frames on some GPUs."),
            download_input(),
        ], outputs=[LivePortrait.Output(display_name="liveportrait",
                                        tooltip="The renderer's networks, on one device.")])

    @classmethod
    def fingerprint_inputs(cls, variant: str, **_):
        """The files on disk: a cached model is reloaded (or its files fetched again) once they change or vanish."""
        return feature_fingerprint(model_roots(LIVEPORTRAIT), liveportrait_feature(variant))

    @classmethod
    def execute(cls, variant: str, device: str, dtype: str, download: str = DOWNLOAD) -> io.NodeOutput:
        with cls.errors():
            root = locate_or_download(model_roots(LIVEPORTRAIT), folder_paths.models_dir, liveportrait_feature(variant),
                                      allow=download == DOWNLOAD, progress=ComfyDownloadProgress())
            dev = comfy_device(device)
            models = load_liveportrait(root, variant, offload_device(), resolve_dtype(dtype, dev))
            if dtype == "auto":
                logging.info("JoyVASA LivePortrait Loader: dtype auto -> %s (%s)", dtype_name(models.dtype),
                             auto_dtype(dev)[1])
            return io.NodeOutput(register(models, dev))


class JoyVASAMotionModelLoader(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        # The released names are always offered (first), present or not: a list is never empty, so ComfyUI never
        # drops the branch, and choosing them fetches them when missing.
        ckpts = [GENERATOR_FILE] + [f for f in list_files(JOYVASA, MOTION_CHECKPOINT_EXTS) if f != GENERATOR_FILE]
        templates = [TEMPLATE_FILE] + [f for f in list_files(JOYVASA, TEMPLATE_EXTS) if f != TEMPLATE_FILE]
        return cls.schema(inputs=[
            io.Combo.Input("checkpoint", options=ckpts, default=GENERATOR_FILE, tooltip=f"{GENERATOR_FILE} in "
                           f"models/{JOYVASA} (downloaded when missing), or another checkpoint found there."),
            io.Combo.Input("template", options=templates, default=TEMPLATE_FILE, tooltip=f"{TEMPLATE_FILE} (the "
                           f"motion statistics) in models/{JOYVASA} (downloaded when missing)."),
            io.Combo.Input("device", options=DEVICES, default="auto", tooltip="auto = ComfyUI's device."),
            io.Combo.Input("dtype", options=["fp32", "fp16", "bf16"], default="fp32", tooltip="precision of the "
                           "diffusion transformer and HuBERT."),
            download_input(),
        ], outputs=[MotionModel.Output(display_name="motion_model", tooltip="The audio-to-motion diffusion model and "
                                       "its de-normalisation template.")])

    @classmethod
    def fingerprint_inputs(cls, checkpoint: str, template: str, **_):
        return fingerprint([model_path_or_none(JOYVASA, checkpoint), model_path_or_none(JOYVASA, template)])

    @classmethod
    def execute(cls, checkpoint: str, template: str, device: str, dtype: str,
                download: str = DOWNLOAD) -> io.NodeOutput:
        with cls.errors():
            motion, tpl = model_path_or_none(JOYVASA, checkpoint), model_path_or_none(JOYVASA, template)
            if (motion is None and checkpoint == GENERATOR_FILE) or (tpl is None and template == TEMPLATE_FILE):
                root = locate_or_download(model_roots(JOYVASA), folder_paths.models_dir, MOTION_GENERATOR,
                                          allow=download == DOWNLOAD, progress=ComfyDownloadProgress())
                found = find_joyvasa_files(root)
                motion = motion or str(found[0])
                tpl = tpl or str(found[1])
            models = load_motion_model(None, offload_device(), dtype,
                                       generator_path=motion or model_path(JOYVASA, checkpoint),
                                       template_path=tpl or model_path(JOYVASA, template))
            return io.NodeOutput(register(models, comfy_device(device)))


class JoyVASAFaceDetectorLoader(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        options = list(DETECTORS_ALWAYS)
        if _official_root() is not None:
            options.append(OFFICIAL_DETECTOR)
        return cls.schema(inputs=[
            io.Combo.Input("detector", options=options, default="auto"),
            io.Combo.Input("device", options=DEVICES, default="auto", tooltip="auto = ComfyUI's device (the official "
                           "detector runs with onnxruntime's providers)."),
        ], outputs=[FaceDetector.Output(display_name="face_detector", tooltip="Finds faces and their landmarks for "
                                        "the crop.")])

    @classmethod
    def execute(cls, detector: str, device: str) -> io.NodeOutput:
        with cls.errors():
            dev = comfy_device(device)
            if detector.startswith("bundled_"):
                return io.NodeOutput(bundled_face_detector("full" if detector.endswith("full_range") else "short", dev))
            prefer = "official" if detector == OFFICIAL_DETECTOR else "auto"
            return io.NodeOutput(load_face_detector(_official_root(), dev, prefer))


def _official_root() -> str | None:
    for root in model_roots(INSIGHTFACE, LIVEPORTRAIT):
        if official_detector_dirs(root) is not None:
            return root
    return None
