"""Runs every network-running node of the pack (inside ComfyUI's real memory manager, ``--cpu``) and the command line,
with a forward-pre-hook on every module that records where each network ran; prints the records as JSON.

Run as a script with the ComfyUI tree as working directory (tests/comfyui/test_device_placement.py does): it imports
ComfyUI's ``comfy`` package, so it stays out of the pytest process. Before each node, every model is unloaded
(``unload_all_models``: what another workflow or "free model memory" does), so a node that does not load its networks
through the memory manager first is caught running them offloaded: on a GPU that is the CPU, or a device mismatch.
The command line has no memory manager: there every network's parameters must be on the device asked for.

argv: <work dir> <models dir> <image.png> <speech.wav>
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import comfy.cli_args

comfy.cli_args.args.cpu = True  # a CPU-only torch: ComfyUI's device is the CPU, as `main.py --cpu` makes it
import comfy.model_management as mm  # noqa: E402
import folder_paths  # noqa: E402
import torch  # noqa: E402
import utils.extra_config  # noqa: E402, F401  binds ComfyUI's `utils` package before comfy/utils.py can shadow it (server imports it)

REPO = Path(__file__).resolve().parents[2]
RECORDS: list[dict] = []
STATE = {"entry": ""}
MANAGED: dict[int, object] = {}  # id(module) -> the ModelPatcher that owns it


def _first_tensor(args: tuple) -> torch.Tensor | None:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
        if isinstance(a, (list, tuple)):
            found = _first_tensor(tuple(a))
            if found is not None:
                return found
    return None


def _hook(module: torch.nn.Module, args: tuple) -> None:
    params = list(module.parameters(recurse=False)) or list(module.parameters())[:1]
    x = _first_tensor(args)
    if not params or x is None or not STATE["entry"]:
        return
    patcher = MANAGED.get(id(module))
    loaded = None
    if patcher is not None:
        loaded = any(lm.model is patcher for lm in mm.current_loaded_models)
        loaded = loaded and params[0].device == torch.device(patcher.load_device)
    RECORDS.append({"entry": STATE["entry"], "module": type(module).__name__, "param": str(params[0].device),
                    "input": str(x.device), "managed": patcher is not None, "loaded": loaded})


def _load_pack():
    spec = importlib.util.spec_from_file_location("joyvasa_pack", REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["joyvasa_pack"] = module
    spec.loader.exec_module(module)
    return module


def _run(pack, node: str, **inputs):
    """One node, as ComfyUI's executor calls a V3 node (on a clone of its class); returns its outputs tuple."""
    cls = {n.NODE_ID: n for n in sys.modules["joyvasa_pack.nodes"].NODES}[node]
    cls.GET_SCHEMA()
    out = cls.PREPARE_CLASS_CLONE({}).execute(**inputs)
    return tuple(out.result or ())


def _managed(pack) -> None:
    memory = sys.modules["joyvasa_pack.nodes.memory"]
    for patcher in memory._PATCHERS.values():
        for m in patcher.model.modules():
            MANAGED[id(m)] = patcher


def _node(entry: str, pack, node: str, **inputs):
    mm.unload_all_models()
    STATE["entry"] = entry
    try:
        return _run(pack, node, **inputs)
    finally:
        STATE["entry"] = ""


def run_nodes(work: Path, models: Path, image_path: Path, speech: Path) -> None:
    folder_paths.models_dir = str(models)
    folder_paths.set_output_directory(str(work / "output"))
    folder_paths.set_temp_directory(str(work / "temp"))
    pack = _load_pack()
    import numpy as np
    import soundfile as sf
    from PIL import Image

    image = torch.from_numpy(np.asarray(Image.open(image_path).convert("RGB"), np.float32) / 255)[None]
    wave, rate = sf.read(str(speech), dtype="float32")
    audio = {"waveform": torch.from_numpy(wave)[None, None], "sample_rate": rate}
    lp = _run(pack, "JoyVASALivePortraitLoader", variant="human", device="auto", dtype="fp32",
              download="never download")[0]
    motion_model = _run(pack, "JoyVASAMotionModelLoader", checkpoint="motion_generator_hubert_chinese.pt",
                        template="motion_template.pkl", device="auto", dtype="fp32", download="never download")[0]
    _managed(pack)
    face = _run(pack, "JoyVASALoadReferenceFace", image=image, mode="human", crop="auto", face_index=0,
                face_order="largest", scale=2.3, vx_ratio=0.0, vy_ratio=-0.125, alpha="drop")[0]
    appearance = _node("Extract Appearance", pack, "JoyVASAExtractAppearance", liveportrait=lp, face=face,
                       image_index=0)[0]
    features = _node("Encode Audio", pack, "JoyVASAEncodeAudio", audio=audio, motion_model=motion_model)[0]
    sampling = dict(motion_model=motion_model, audio_features=features, seed=1, cfg_scale=4.0, sampler="ddim",
                    steps=2, smoothing="ema", smoothing_alpha=0.5, leading_silence=True, lag_compensation=True)
    motion = _node("Sample Motion Diffusion", pack, "JoyVASASampleMotionDiffusion", **sampling)[0]
    _node("Sample Motion (old name)", pack, "JoyVASASampleMotion", **sampling)
    keypoints = _node("Compute Target Keypoints", pack, "JoyVASAComputeTargetKeypoints", liveportrait=lp,
                      appearance=appearance, motion=motion, preset="auto", relative_motion="preset",
                      stitching="preset", lip_normalization="preset", driving_multiplier=0.0,
                      animation_region="all")[0]
    render = dict(liveportrait=lp, appearance=appearance, keypoints=keypoints, paste_back=True, batch_size=2,
                  image_index=0, face=face)
    _node("Warp and Render", pack, "JoyVASAWarpAndRender", **render)
    _node("Render Video", pack, "JoyVASARenderVideo", filename_prefix="probe", format="mp4", crf=30,
          save_output=True, audio=audio, **render)
    frames = image[:, :256, :256].repeat(2, 1, 1, 1)
    _node("Motion From Video", pack, "JoyVASAMotionFromVideo", liveportrait=lp, images=frames, fps=25.0,
          crop=False, batch_size=2)
    run_live_node(pack, dict(liveportrait=lp, motion_model=motion_model, face=face), wave, rate)


def run_live_node(pack, graph: dict, wave, rate: int) -> None:
    """The JoyVASA Live node, then a viewer's session as the live page's server drives it (opened and pushed on
    worker threads), with every model unloaded before the session opens and again between its steps: another
    workflow queued meanwhile, or "free model memory", moves them to the offload device."""
    import threading

    live = sys.modules["joyvasa_pack.nodes.live"]
    out = _node("Live", pack, "JoyVASALive", image_index=0, seed=1, cfg_scale=4.0, chunk_frames=2,
                lookahead_frames=2, paste_back=True, blinks="on", blink_rate=30.0, **graph)
    assert out == (), out
    source = next(iter(live.HUB.sources.values()))
    piece = int(0.1 * rate)
    pieces = [torch.from_numpy(wave[i : i + piece]) for i in range(0, len(wave), piece)]

    failed: list[BaseException] = []

    def viewer() -> None:
        try:
            with torch.inference_mode(), source.open_session() as session:
                for chunk in pieces:
                    list(session.push(chunk, rate))
                    mm.unload_all_models()
                assert list(session.finish()), "the live session made no frame"
        except BaseException as exc:  # noqa: BLE001  handed to the main thread
            failed.append(exc)

    mm.unload_all_models()
    STATE["entry"] = "Live session"
    try:
        worker = threading.Thread(target=viewer)
        worker.start()
        worker.join()
    finally:
        STATE["entry"] = ""
    if failed:
        raise failed[0]


def run_cli(work: Path, models: Path, image_path: Path, speech: Path) -> None:
    sys.path.insert(0, str(REPO))
    from joyvasa_core import cli

    STATE["entry"] = "command line"
    code = cli.main(["--device", "cpu", "--dtype", "fp32", "--quiet", "--no-download", "--seed", "1",
                     "--sampler", "ddim", "--steps", "2", "--image", str(image_path), "--audio", str(speech),
                     "--models", str(models), "--out", str(work / "cli.mp4")])
    STATE["entry"] = ""
    RECORDS.append({"entry": "command line exit", "code": code})


def main() -> None:
    work, models, image_path, speech = map(Path, sys.argv[1:5])
    torch.nn.modules.module.register_module_forward_pre_hook(_hook)
    run_nodes(work, models, image_path, speech)
    run_cli(work, models, image_path, speech)
    print(json.dumps(RECORDS))


if __name__ == "__main__":
    main()
