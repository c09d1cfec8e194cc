"""Every shipped workflow (workflows/*.json, UI format) runs end to end through a real ComfyUI from its API twin
(workflows/api/*.json), and the twin is what the UI file converts to, so neither can drift from the other."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import soundfile as sf
from fixture_support import fixture_dir
from model_folders import write_joyvasa, write_liveportrait
from render_prompts import speech_frames
from ui_driver import upload_template_inputs
from ui_to_api import convert

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
FIXTURES = fixture_dir()
SPEECH_S = 1.5

pytestmark = pytest.mark.comfyui


def _twin(workflow: Path) -> dict:
    return json.loads((workflow.parent / "api" / workflow.name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def inputs(comfyui, tmp_path_factory) -> None:
    """The file names the workflows hold: portrait.png, portrait_b.png (another face), animal.png, speech.wav."""
    write_liveportrait(comfyui.base / "models", "official")
    write_liveportrait(comfyui.base / "models", "official", animal=True)
    write_joyvasa(comfyui.base / "models")
    work = tmp_path_factory.mktemp("workflow_inputs")
    wave, rate = sf.read(str(FIXTURES / "speech_en_16k.wav"), dtype="int16")
    sf.write(str(work / "speech.wav"), wave[: int(SPEECH_S * rate)], rate, subtype="PCM_16")
    upload_template_inputs(comfyui, work, FIXTURES / "astronaut.png", work / "speech.wav", FIXTURES / "chelsea.png")


def test_workflows_are_shipped_with_api_twins():
    names = {p.stem for p in WORKFLOWS}
    assert {"joyvasa_talking_portrait", "joyvasa_talking_portrait_frames", "joyvasa_animal", "joyvasa_two_faces",
            "joyvasa_reuse_motion"} <= names
    assert {p.stem for p in (REPO / "workflows" / "api").glob("*.json")} == names


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_api_twin_is_the_ui_workflow_converted(comfyui, workflow):
    ui = json.loads(workflow.read_text(encoding="utf-8"))
    assert convert(ui, comfyui.object_info()) == _twin(workflow), f"run tools/make_workflows.py ({workflow.name})"


def _videos(comfyui, entry: dict) -> list[Path]:
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert entry["status"]["status_str"] == "success", errors[0]["exception_message"] if errors else entry["status"]
    files = [f for out in entry["outputs"].values() for f in out.get("images", []) if f["filename"].endswith(".mp4")]
    return [comfyui.output_path(f) for f in files]


def _check_video(path: Path, size: tuple[int, int] | None = None) -> None:
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio
        assert video.average_rate == 25 and len(audio) == 1
        assert abs(float(audio[0].duration * audio[0].time_base) - SPEECH_S) < 0.05
        if size is not None:
            assert (video.codec_context.width, video.codec_context.height) == size
        assert sum(1 for _ in container.decode(video=0)) == speech_frames(SPEECH_S)


@pytest.fixture(scope="module")
def saved_motion(comfyui, inputs) -> str:
    """Runs the talking-portrait workflow (which also saves its motion); returns the motion's Load Motion name."""
    entry = comfyui.run(_twin(REPO / "workflows" / "joyvasa_talking_portrait.json"), timeout=900)
    (video,) = _videos(comfyui, entry)
    _check_video(video, (512, 512))  # pasted back into the 512x512 photo
    motions = [f for out in entry["outputs"].values() for f in out.get("motion", [])]
    (motion,) = motions
    return f"{motion['subfolder']}/{motion['filename']} [output]"


def test_talking_portrait_workflow(saved_motion):
    assert saved_motion.endswith(".safetensors [output]")


def test_frames_workflow(comfyui, inputs):
    (video,) = _videos(comfyui, comfyui.run(_twin(REPO / "workflows" / "joyvasa_talking_portrait_frames.json"), 900))
    _check_video(video, (512, 512))


def test_animal_workflow(comfyui, inputs):
    (video,) = _videos(comfyui, comfyui.run(_twin(REPO / "workflows" / "joyvasa_animal.json"), 900))
    _check_video(video, (450, 300))  # the cat (451x300, even sides) at its own size: the whole crop's picture


def test_two_faces_workflow(comfyui, inputs):
    videos = _videos(comfyui, comfyui.run(_twin(REPO / "workflows" / "joyvasa_two_faces.json"), 900))
    assert len(videos) == 2
    sizes = []
    for path in videos:
        with av.open(str(path)) as container:
            sizes.append((container.streams.video[0].codec_context.width,
                          container.streams.video[0].codec_context.height))
        _check_video(path)
    assert sorted(sizes) == [(472, 512), (512, 512)]  # each face pasted back into its own photo


def test_reuse_motion_workflow(comfyui, inputs, saved_motion):
    prompt = _twin(REPO / "workflows" / "joyvasa_reuse_motion.json")
    (load,) = [k for k, v in prompt.items() if v["class_type"] == "JoyVASALoadMotion"]
    prompt[load]["inputs"]["motion_file"] = saved_motion  # the file the first workflow saved in this session
    (video,) = _videos(comfyui, comfyui.run(prompt, 900))
    _check_video(video, (472, 512))


def test_templates_are_listed_with_their_thumbnails_served(comfyui):
    """The Templates dialog lists the pack's templates (GET /api/workflow_templates) and asks for
    ``/api/workflow_templates/<pack>/<name>.jpg`` beside each: every template has one (tools/make_template_media.py
    renders them), a real image, not a 404."""
    listed = comfyui.request("GET", "/api/workflow_templates")
    assert sorted(listed[comfyui.pack_name]) == sorted(p.stem for p in WORKFLOWS)
    for name in listed[comfyui.pack_name]:
        status, body = comfyui.get_bytes(f"/api/workflow_templates/{comfyui.pack_name}/{name}.jpg")
        assert status == 200, f"{name}.jpg: HTTP {status}, a placeholder in Templates; run tools/make_template_media.py"
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (512, 512, 3), name
        assert image.std() > 10, f"{name}.jpg is flat: a placeholder, not a frame"
