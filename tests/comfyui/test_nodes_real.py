"""The JoyVASA nodes inside a real ComfyUI 0.3.75: what /object_info advertises, the shipped workflow run end to end
on small-width checkpoints in the official file formats (an mp4 with the right frame count and the speech), a bad
input reported by the node that met it with the fix, and Cancel (POST /interrupt) stopping a render promptly."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import aiohttp
import av
import cv2
import numpy as np
import pytest
import soundfile as sf
from comfyui_harness import PromptRejected, prompt_events
from fixture_support import fixture_dir
from model_folders import write_joyvasa, write_liveportrait
from ui_to_api import combo_options, convert

REPO = Path(__file__).resolve().parents[2]
FIXTURES = fixture_dir()
WORKFLOW = REPO / "workflows" / "joyvasa_talking_portrait_frames.json"  # the IMAGE path into core Create Video
CLIP_SECONDS = 1.5  # of the fixture speech: 40 frames
PORTRAIT, SPEECH = "portrait.png", "speech.wav"  # the names the shipped workflow's Load Image / Load Audio hold

pytestmark = pytest.mark.comfyui

# node -> required inputs, optional inputs (name -> socket type, COMBO for lists), outputs (type, name), category
EXPECTED = {
    "JoyVASALivePortraitLoader": (
        {"variant": "COMBO", "device": "COMBO", "dtype": "COMBO", "download": "COMBO"}, {},
        [("JOYVASA_LIVEPORTRAIT", "liveportrait")], "JoyVASA/loaders"),
    "JoyVASAMotionModelLoader": (
        {"checkpoint": "COMBO", "template": "COMBO", "device": "COMBO", "dtype": "COMBO", "download": "COMBO"}, {},
        [("JOYVASA_MOTION_MODEL", "motion_model")], "JoyVASA/loaders"),
    "JoyVASAFaceDetectorLoader": (
        {"detector": "COMBO", "device": "COMBO"}, {},
        [("JOYVASA_FACE_DETECTOR", "face_detector")], "JoyVASA/loaders"),
    "JoyVASALoadReferenceFace": (
        {"image": "IMAGE", "mode": "COMBO", "crop": "COMBO", "face_index": "INT", "face_order": "COMBO",
         "scale": "FLOAT", "vx_ratio": "FLOAT", "vy_ratio": "FLOAT", "alpha": "COMBO"},
        {"box_x": "INT", "box_y": "INT", "box_w": "INT", "box_h": "INT", "face_detector": "JOYVASA_FACE_DETECTOR",
         "mask": "MASK"},
        [("JOYVASA_FACE", "face"), ("IMAGE", "crop_preview")], "JoyVASA/face"),
    "JoyVASAExtractAppearance": (
        {"liveportrait": "JOYVASA_LIVEPORTRAIT", "face": "JOYVASA_FACE", "image_index": "INT"}, {},
        [("JOYVASA_APPEARANCE", "appearance")], "JoyVASA/face"),
    "JoyVASAEncodeAudio": (
        {"audio": "AUDIO"}, {"motion_model": "JOYVASA_MOTION_MODEL"},
        [("JOYVASA_AUDIO_FEATURES", "audio_features")], "JoyVASA/audio"),
    "JoyVASASampleMotionDiffusion": (
        {"motion_model": "JOYVASA_MOTION_MODEL", "audio_features": "JOYVASA_AUDIO_FEATURES", "seed": "INT",
         "cfg_scale": "FLOAT", "sampler": "COMBO", "steps": "INT", "smoothing": "COMBO", "smoothing_alpha": "FLOAT",
         "leading_silence": "BOOLEAN", "lag_compensation": "BOOLEAN"}, {},
        [("JOYVASA_MOTION", "motion")], "JoyVASA/motion"),
    "JoyVASASampleMotion": (
        {"motion_model": "JOYVASA_MOTION_MODEL", "audio_features": "JOYVASA_AUDIO_FEATURES", "seed": "INT",
         "cfg_scale": "FLOAT", "sampler": "COMBO", "steps": "INT", "smoothing": "COMBO", "smoothing_alpha": "FLOAT",
         "leading_silence": "BOOLEAN", "lag_compensation": "BOOLEAN"}, {},
        [("JOYVASA_MOTION", "motion")], "JoyVASA/motion"),
    "JoyVASAComputeTargetKeypoints": (
        {"liveportrait": "JOYVASA_LIVEPORTRAIT", "appearance": "JOYVASA_APPEARANCE", "motion": "JOYVASA_MOTION",
         "preset": "COMBO", "relative_motion": "COMBO", "stitching": "COMBO", "lip_normalization": "COMBO",
         "driving_multiplier": "FLOAT", "animation_region": "COMBO"}, {},
        [("JOYVASA_KEYPOINTS", "keypoints")], "JoyVASA/motion"),
    "JoyVASAWarpAndRender": (
        {"liveportrait": "JOYVASA_LIVEPORTRAIT", "appearance": "JOYVASA_APPEARANCE", "keypoints": "JOYVASA_KEYPOINTS",
         "paste_back": "BOOLEAN", "batch_size": "INT", "image_index": "INT"},
        {"face": "JOYVASA_FACE", "audio": "AUDIO"},
        [("IMAGE", "frames"), ("AUDIO", "audio"), ("FLOAT", "fps")], "JoyVASA/render"),
    "JoyVASARenderVideo": (
        {"liveportrait": "JOYVASA_LIVEPORTRAIT", "appearance": "JOYVASA_APPEARANCE", "keypoints": "JOYVASA_KEYPOINTS",
         "paste_back": "BOOLEAN", "batch_size": "INT", "image_index": "INT", "filename_prefix": "STRING",
         "format": "COMBO", "crf": "INT", "save_output": "BOOLEAN"},
        {"face": "JOYVASA_FACE", "audio": "AUDIO"},
        [("VIDEO", "video"), ("STRING", "path")], "JoyVASA/render"),
    "JoyVASASaveMotion": ({"motion": "JOYVASA_MOTION", "filename_prefix": "STRING"}, {}, [], "JoyVASA/motion"),
    "JoyVASALoadMotion": ({"motion_file": "COMBO"}, {}, [("JOYVASA_MOTION", "motion")], "JoyVASA/motion"),
    "JoyVASAMotionFromVideo": (
        {"liveportrait": "JOYVASA_LIVEPORTRAIT", "images": "IMAGE", "fps": "FLOAT", "crop": "BOOLEAN",
         "batch_size": "INT"}, {"face_detector": "JOYVASA_FACE_DETECTOR"},
        [("JOYVASA_MOTION", "motion")], "JoyVASA/motion"),
    "JoyVASAMixMotion": ({"expression": "JOYVASA_MOTION", "fit": "COMBO"},
                         {"head": "JOYVASA_MOTION", "lips": "JOYVASA_MOTION"},
                         [("JOYVASA_MOTION", "motion")], "JoyVASA/motion"),
    "JoyVASAEditMotion": (
        {"motion": "JOYVASA_MOTION", "head_rotation": "FLOAT", "translation": "FLOAT", "scale": "FLOAT",
         "expression": "FLOAT", "lips": "FLOAT", "pitch": "FLOAT", "yaw": "FLOAT", "roll": "FLOAT"}, {},
        [("JOYVASA_MOTION", "motion")], "JoyVASA/motion"),
    "JoyVASAFitMotion": ({"motion": "JOYVASA_MOTION", "start": "INT", "stop": "INT", "length": "INT", "mode": "COMBO"},
                         {}, [("JOYVASA_MOTION", "motion")], "JoyVASA/motion"),
    "JoyVASACrossfadeMotion": ({"first": "JOYVASA_MOTION", "second": "JOYVASA_MOTION", "frames": "INT"}, {},
                               [("JOYVASA_MOTION", "motion")], "JoyVASA/motion"),
    "JoyVASAAddBlinks": (
        {"motion": "JOYVASA_MOTION", "mode": "COMBO", "rate": "FLOAT", "duration": "FLOAT", "seed": "INT",
         "openness": "FLOAT"}, {}, [("JOYVASA_MOTION", "motion")], "JoyVASA/motion"),
    "JoyVASAMotionPreview": ({"motion": "JOYVASA_MOTION", "width": "INT", "audio_delay": "FLOAT"}, {"audio": "AUDIO"},
                             [("IMAGE", "plot")], "JoyVASA/motion"),
    "JoyVASAExportDrivingTemplate": ({"motion": "JOYVASA_MOTION", "filename_prefix": "STRING"}, {}, [],
                                     "JoyVASA/motion"),
    "JoyVASALoadDrivingTemplate": ({"template_file": "COMBO"}, {}, [("JOYVASA_MOTION", "motion")], "JoyVASA/motion"),
    "JoyVASALive": ({"liveportrait": "JOYVASA_LIVEPORTRAIT", "motion_model": "JOYVASA_MOTION_MODEL",
                     "face": "JOYVASA_FACE", "image_index": "INT", "seed": "INT", "cfg_scale": "FLOAT",
                     "chunk_frames": "INT", "lookahead_frames": "INT", "paste_back": "BOOLEAN", "blinks": "COMBO",
                     "blink_rate": "FLOAT"}, {}, [],
                    "JoyVASA/live"),
}


@pytest.fixture(scope="module")
def installed(comfyui, tmp_path_factory) -> dict:
    """The server's models/ holds the small checkpoints; input/ the portrait and 1.5 s of speech."""
    t0 = time.monotonic()
    write_liveportrait(comfyui.base / "models", "official")
    write_joyvasa(comfyui.base / "models")
    work = tmp_path_factory.mktemp("node_inputs")
    wave, rate = sf.read(str(FIXTURES / "speech_en_16k.wav"), dtype="int16")
    speech = work / SPEECH
    sf.write(str(speech), wave[: int(CLIP_SECONDS * rate)], rate, subtype="PCM_16")
    black = work / "black.png"
    cv2.imwrite(str(black), np.zeros((256, 256, 3), np.uint8))
    names = {
        "portrait": comfyui.upload(FIXTURES / "astronaut.png", name=PORTRAIT),
        "speech": comfyui.upload(speech),
        "black": comfyui.upload(black),
    }
    assert names["portrait"] == PORTRAIT and names["speech"] == SPEECH
    print(f"models + inputs installed in {time.monotonic() - t0:.1f} s")
    return {"names": names, "speech": speech, "frames": math.floor(CLIP_SECONDS * 25 + 0.5)}


def _workflow() -> dict:
    return json.loads(WORKFLOW.read_text(encoding="utf-8"))


def _node_id(prompt: dict, class_type: str) -> str:
    ids = [k for k, v in prompt.items() if v["class_type"] == class_type]
    assert len(ids) == 1, f"{class_type}: expected once in the workflow, found {ids}"
    return ids[0]


def _prompt(comfyui) -> dict:
    return convert(_workflow(), comfyui.object_info())


def _videos(comfyui) -> set[Path]:
    return set((comfyui.base / "output").rglob("*.mp4"))


def _messages(entry: dict, kind: str) -> list[dict]:
    return [m[1] for m in entry["status"]["messages"] if m[0] == kind]


def test_object_info_lists_every_node_with_its_sockets(comfyui, installed):
    info = comfyui.object_info()
    ours = {k: v for k, v in info.items() if k.startswith("JoyVASA")}
    assert sorted(ours) == sorted(EXPECTED)
    for name, (required, optional, outputs, category) in EXPECTED.items():
        spec = ours[name]
        got_req = {k: "COMBO" if isinstance(v[0], list) else v[0] for k, v in spec["input"]["required"].items()}
        got_opt = {k: "COMBO" if isinstance(v[0], list) else v[0] for k, v in spec["input"].get("optional", {}).items()}
        # widget order, as saved workflows store their values
        assert spec["input_order"]["required"] == list(required), name
        assert got_req == required, name
        assert got_opt == optional, name
        assert list(zip(spec["output"], spec["output_name"], strict=True)) == outputs, name
        assert spec["category"] == category and spec["display_name"].startswith("JoyVASA "), name
        assert spec["description"], f"{name} has no description"
    # Model combos list what models/ holds; the defaults users get are the web demo's.
    loader = ours["JoyVASAMotionModelLoader"]["input"]["required"]
    assert combo_options(loader["checkpoint"]) == ["motion_generator_hubert_chinese.pt"]
    assert combo_options(loader["template"]) == ["motion_template.pkl"]
    sampler = ours["JoyVASASampleMotionDiffusion"]["input"]["required"]
    assert sampler["cfg_scale"][1]["default"] == 4.0
    assert sampler["seed"][1]["control_after_generate"] is True
    assert combo_options(sampler["sampler"]) == ["ddpm", "ddim"]
    assert sampler["lag_compensation"][1]["default"] is True  # lips in sync unless the reference's timing is asked
    assert ours["JoyVASASampleMotionDiffusion"]["display_name"] == "JoyVASA Sample Motion Diffusion"
    # the old type name still loads saved workflows, hidden from the node library
    assert ours["JoyVASASampleMotion"]["deprecated"] is True
    assert not ours["JoyVASASampleMotionDiffusion"].get("deprecated")
    assert ours["JoyVASARenderVideo"]["output_node"] is True
    # every crop the no-face hint names exists
    crops = combo_options(ours["JoyVASALoadReferenceFace"]["input"]["required"]["crop"])
    assert crops == ["auto", "face", "box", "mask", "whole", "squeeze"]
    presets = combo_options(ours["JoyVASAComputeTargetKeypoints"]["input"]["required"]["preset"])
    assert presets == ["auto", "web", "cli", "animal"]
    assert ours["JoyVASASaveMotion"]["output_node"] is True
    detectors = combo_options(ours["JoyVASAFaceDetectorLoader"]["input"]["required"]["detector"])
    assert detectors == ["auto", "bundled_short_range", "bundled_full_range"]  # no official ONNX files installed


def test_shipped_workflow_renders_an_mp4_with_speech(comfyui, installed):
    ui = _workflow()
    prompt = convert(ui, comfyui.object_info())
    before = _videos(comfyui)
    t0 = time.monotonic()
    entry = comfyui.run(prompt, timeout=900)
    elapsed = time.monotonic() - t0
    errors = _messages(entry, "execution_error")
    assert entry["status"]["status_str"] == "success", errors[0]["exception_message"] if errors else entry["status"]
    save_id = _node_id(prompt, "SaveVideo")
    files = entry["outputs"][save_id]["images"]
    assert len(files) == 1 and files[0]["filename"].endswith(".mp4")
    path = comfyui.output_path(files[0])
    assert _videos(comfyui) - before == {path}
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio
        assert video.average_rate == 25
        size = (video.codec_context.width, video.codec_context.height)
        assert size == cv2.imread(str(FIXTURES / "astronaut.png")).shape[1::-1]  # pasted back into the photo
        assert len(audio) == 1
        audio_seconds = float(audio[0].duration * audio[0].time_base)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert len(frames) == installed["frames"]
    assert abs(audio_seconds - CLIP_SECONDS) < 0.05
    assert np.abs(frames.astype(np.int16) - frames[:1]).max() > 16, "every frame is the same picture"
    print(f"workflow: {len(frames)} frames in {elapsed:.1f} s")


def test_all_black_image_is_reported_by_the_node_with_the_fix(comfyui, installed):
    prompt = _prompt(comfyui)
    prompt[_node_id(prompt, "LoadImage")]["inputs"]["image"] = installed["names"]["black"]
    before = _videos(comfyui)
    entry = comfyui.run(prompt, timeout=600)
    assert entry["status"]["status_str"] == "error"
    (error,) = _messages(entry, "execution_error")
    assert error["node_type"] == "JoyVASALoadReferenceFace"
    message = error["exception_message"]
    assert message.startswith("JoyVASA Load Reference Face: "), message
    assert "all black" in message and "check the loader or the upstream node" in message, message
    assert error["exception_type"].endswith("FaceInputError")
    assert _videos(comfyui) == before, "a failed run must not write a video"


async def _interrupt_render(url: str, prompt: dict, render_id: str) -> dict:
    """Queue ``prompt``, POST /interrupt at the render node's first progress event, time until the server says the
    prompt was interrupted."""
    result: dict = {}
    async with aiohttp.ClientSession() as session:
        async for prompt_id, event in prompt_events(session, url, prompt):
            data = event.get("data", {})
            if event["type"] == "executing" and data.get("node") == render_id:
                result["started"] = time.monotonic()
            elif event["type"] == "progress" and data["node"] == render_id and "sent" not in result:
                result.update(value=data["value"], max=data["max"])
                result["first_chunk"] = time.monotonic() - result["started"]
                async with session.post(url + "/interrupt") as resp:
                    assert resp.status == 200
                result["sent"] = time.monotonic()
            elif event["type"] in ("execution_interrupted", "execution_error", "execution_success"):
                result.update(event=event["type"], data=data, done=time.monotonic(), prompt_id=prompt_id)
                return result
    raise AssertionError(f"the websocket closed before the prompt finished: {result}")


def test_interrupt_stops_a_render_promptly(comfyui, installed):
    prompt = _prompt(comfyui)
    render_id = _node_id(prompt, "JoyVASAWarpAndRender")
    prompt[render_id]["inputs"]["batch_size"] = 1  # a new render (the rest may come from the cache), 40 chunks
    before = _videos(comfyui)
    result = asyncio.run(asyncio.wait_for(_interrupt_render(comfyui.url, prompt, render_id), timeout=900))
    assert "sent" in result, "the render never reported progress"
    latency = result["done"] - result["sent"]
    assert result["event"] == "execution_interrupted", result
    assert result["data"]["node_id"] == render_id
    assert result["value"] < result["max"] == installed["frames"]
    # The render checks for Cancel between chunks (one frame here): it must stop within about one chunk's time.
    assert latency < 2 * result["first_chunk"] + 1.0, f"stopped {latency:.1f} s after the interrupt; a chunk " \
        f"takes {result['first_chunk']:.1f} s"
    entry = comfyui.wait(result["prompt_id"], timeout=60)
    assert entry["status"]["status_str"] == "error" and _messages(entry, "execution_interrupted")
    assert _videos(comfyui) == before, "an interrupted run must not write a video"
    print(f"interrupt: stopped {latency:.2f} s after POST /interrupt (progress {result['value']}/{result['max']}, "
          f"first chunk {result['first_chunk']:.2f} s)")


def _motion_prompt(comfyui, prefix: str) -> tuple[dict, str]:
    """The shipped workflow's audio -> motion part with Save Motion at the end."""
    full = _prompt(comfyui)
    keep = ("LoadAudio", "JoyVASAMotionModelLoader", "JoyVASAEncodeAudio", "JoyVASASampleMotionDiffusion")
    prompt = {_node_id(full, c): full[_node_id(full, c)] for c in keep}
    sample_id = _node_id(full, "JoyVASASampleMotionDiffusion")
    prompt["900"] = {"class_type": "JoyVASASaveMotion", "inputs": {"motion": [sample_id, 0], "filename_prefix": prefix}}
    return prompt, "900"


def _saved(comfyui, entry: dict, node: str) -> Path:
    errors = _messages(entry, "execution_error")
    assert entry["status"]["status_str"] == "success", errors[0]["exception_message"] if errors else entry["status"]
    (saved,) = entry["outputs"][node]["motion"]
    return comfyui.output_path(saved)


def test_saved_motion_reloads_unchanged(comfyui, installed):
    from safetensors import safe_open

    prompt, save_id = _motion_prompt(comfyui, "joyvasa/motion")
    first = _saved(comfyui, comfyui.run(prompt, timeout=600), save_id)
    name = f"{first.relative_to(comfyui.base / 'output').as_posix()} [output]"
    loader = comfyui.object_info("JoyVASALoadMotion")["JoyVASALoadMotion"]["input"]["required"]
    listed = combo_options(loader["motion_file"])
    assert name in listed
    reload = {
        "1": {"class_type": "JoyVASALoadMotion", "inputs": {"motion_file": name}},
        "2": {"class_type": "JoyVASASaveMotion", "inputs": {"motion": ["1", 0], "filename_prefix": "joyvasa/again"}},
    }
    second = _saved(comfyui, comfyui.run(reload, timeout=600), "2")
    with safe_open(str(first), "pt") as a, safe_open(str(second), "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys()) and "exp" in a.keys()
        for key in a.keys():
            assert a.get_tensor(key).equal(b.get_tensor(key)), key
        assert a.get_tensor("exp").shape[0] == installed["frames"]
        meta = json.loads(a.metadata()["json"])
        assert json.loads(b.metadata()["json"]) == meta
    sample = prompt[_node_id(prompt, "JoyVASASampleMotionDiffusion")]["inputs"]
    assert meta["seed"] == sample["seed"] and meta["settings"]["cfg_scale"] == sample["cfg_scale"]


def test_file_names_cannot_leave_comfyuis_folders(comfyui, installed):
    load = {"1": {"class_type": "JoyVASALoadMotion", "inputs": {"motion_file": "../../../../etc/passwd"}},
            "2": {"class_type": "JoyVASASaveMotion", "inputs": {"motion": ["1", 0], "filename_prefix": "x"}}}
    with pytest.raises(PromptRejected) as rejected:
        comfyui.queue(load)
    errors = rejected.value.body["node_errors"]["1"]["errors"]
    assert errors[0]["type"] == "custom_validation_failed" and "outside" in errors[0]["details"]
    prompt, save_id = _motion_prompt(comfyui, "../../escaped/motion")
    entry = comfyui.run(prompt, timeout=600)
    (error,) = _messages(entry, "execution_error")
    assert error["node_type"] == "JoyVASASaveMotion"
    assert error["exception_message"].startswith("JoyVASA Save Motion: filename_prefix '../../escaped/motion' points")
    assert not (comfyui.base.parent / "escaped").exists() and not (comfyui.base / "escaped").exists()


def test_bad_sampling_options_are_refused_before_running(comfyui, installed):
    prompt, _ = _motion_prompt(comfyui, "joyvasa/refused")  # no other output, so the prompt is refused whole
    sample_id = _node_id(prompt, "JoyVASASampleMotionDiffusion")
    before = set((comfyui.base / "output").rglob("*"))
    for name, value, kind, words in (("seed", -1, "value_smaller_than_min", "Value -1 smaller than min of 0"),
                                     ("cfg_scale", -0.5, "custom_validation_failed", "cfg_scale -0.5: out of range")):
        bad = json.loads(json.dumps(prompt))
        bad[sample_id]["inputs"][name] = value
        with pytest.raises(PromptRejected) as rejected:
            comfyui.queue(bad)
        (error,) = rejected.value.body["node_errors"][sample_id]["errors"]  # under the bad widget alone
        assert error["type"] == kind and error["extra_info"]["input_name"] == name
        assert words in error["details"] + " " + error["message"], error
    assert set((comfyui.base / "output").rglob("*")) == before
