"""Makes what users see of the shipped templates: a thumbnail for the Templates dialog (``workflows/<name>.jpg``, a
frame of the video the template renders from the shipped example photo and speech) and screenshots of each template
after a run at 1920x1080 in ``docs/screenshots/``, listed with what each shows in ``docs/screenshots/README.md``.

It does what a user does, in a real ComfyUI and headless Chromium (as the browser tests): opens each template from
Templates, clicks Run, waits for the players. A template without groups is one screenshot (``<name>.png``). A grouped
one is read as a user reads it: ``<name>.png`` at its saved view (the first row of groups), then, for each group not
yet wholly shown, ``<name>-<group>.png`` with the view panned onto that group at 100% (the layout test's rule,
tests/comfyui/browser_layout.py), its players and images loaded. Networks: ``--models DIR`` (a ComfyUI ``models``
folder with the real weights) or, by default, the tests' networks of the real architectures with random weights
filled by the fixture rule (tests/model_folders.py): their frames are textures, not a face, until the tool is run
with real weights.

joyvasa_motion_material gets the inputs its note asks for, made here: ``driving.mp4``, the shipped example portrait
swaying its head (a real face for Motion From Video's detector), and ``driving_template.pkl``, the motion the
talking-portrait run saved, exported as a LivePortrait driving template by the pack's own writer.

Usage: ``.venv/bin/python tools/make_template_media.py [--models DIR]`` (then review the images).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "comfyui")]

from browser_layout import PAN, groups_on_screen, measure, shift_to  # noqa: E402
from comfyui_harness import free_port, make_base, start_server, stop  # noqa: E402
from fixture_support import fixture_dir  # noqa: E402
from model_folders import write_joyvasa, write_liveportrait  # noqa: E402
from ui_driver import (  # noqa: E402
    PLAYERS_READY,
    VIDEOS_IN_VIEW,
    click_run,
    open_app,
    open_template,
    plays,
    upload_template_inputs,
    videos,
)
from webdriver import Browser  # noqa: E402

from joyvasa_core.checkpoints.driving_template import write_driving_template  # noqa: E402
from joyvasa_core.checkpoints.motion_file import read_motion_file  # noqa: E402
from joyvasa_core.video import VideoWriter  # noqa: E402

EXAMPLES = REPO / "joyvasa_core" / "examples"
SHOTS = REPO / "docs" / "screenshots"
# in this order: joyvasa_reuse_motion plays, and joyvasa_motion_material's driving template is, the motion
# joyvasa_talking_portrait saves
TEMPLATES = ("joyvasa_talking_portrait", "joyvasa_talking_portrait_frames", "joyvasa_animal", "joyvasa_two_faces",
             "joyvasa_reuse_motion", "joyvasa_motion_material")
SAVED_MOTION = {"filename": "motion_00001_.safetensors", "subfolder": "JoyVASA", "type": "output"}
SCREEN = (1920, 1080)
THUMBNAIL = 512  # px, square: the dialog's cards crop to a square
DRIVING_S, DRIVING_FPS = 2.0, 25
# every loaded player on the canvas at its middle frame, painted (a fresh player shows a blank first frame)
SHOW_MIDDLE = """
const players = Array.from(document.querySelectorAll(".comfy-img-preview video")).filter((v) => v.readyState >= 2);
await Promise.all(players.map((v) => new Promise((done) => {
    v.addEventListener("seeked", done, {once: true});
    setTimeout(done, 5000);
    v.currentTime = v.duration / 2;
})));
await new Promise((r) => setTimeout(r, 500));
"""
NEXT_FRAMES = "await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));"


def middle_frame(path: Path) -> np.ndarray:
    """The video's middle frame, BGR."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    return frames[len(frames) // 2]


def thumbnail(frames: list[np.ndarray]) -> np.ndarray:
    """THUMBNAIL px square: the centre square of one frame; of several (a template that makes several videos), the
    centre strips of each side by side, so each card shows what its template makes."""
    strips = []
    for frame in frames:
        h, w = frame.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = cv2.resize(frame[top : top + side, left : left + side], (THUMBNAIL, THUMBNAIL),
                            interpolation=cv2.INTER_AREA)
        width = THUMBNAIL // len(frames)
        strips.append(square[:, (THUMBNAIL - width) // 2 : (THUMBNAIL + width) // 2])
    return cv2.resize(np.hstack(strips), (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA)


def driving_video(photo: Path, path: Path) -> Path:
    """``photo`` swaying its head, as a real mp4: a roll of up to 5 degrees about the chin and a slight nod, twice as
    fast. A video of a real face (a talking video rendered on random-weight networks shows none)."""
    image = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    frames = []
    for i in range(int(DRIVING_S * DRIVING_FPS)):
        phase = 2 * math.pi * i / (DRIVING_S * DRIVING_FPS)
        M = cv2.getRotationMatrix2D((w / 2, h * 0.9), 5 * math.sin(phase), 1.0)
        M[1, 2] += 4 * math.sin(2 * phase)
        frames.append(cv2.warpAffine(image, M, (w, h), borderMode=cv2.BORDER_REPLICATE))
    with VideoWriter(path, fps=DRIVING_FPS, overwrite=True) as writer:
        writer.write(torch.from_numpy(np.stack(frames)))
    return path


def upload_driving_template(server, work: Path) -> None:
    """``driving_template.pkl`` for Load Driving Template: the motion the talking-portrait run saved, written as a
    LivePortrait driving template by the pack's own exporter."""
    path = write_driving_template(read_motion_file(server.output_path(SAVED_MOTION)), work / "driving_template.pkl")
    assert server.upload(path) == "driving_template.pkl"


def show_run(browser, made: dict[str, dict]) -> None:
    """Waits until the players and images in view show this run's output; seeks the players to their middle frame."""
    browser.js_async(NEXT_FRAMES)  # the view drawn where it now is
    for node_id in browser.js(VIDEOS_IN_VIEW):
        if node_id in made:
            plays(browser, node_id, made[node_id]["filename"], timeout=60)
    browser.wait_for(PLAYERS_READY, "the players and images in view")
    browser.js_async(SHOW_MIDDLE)


def slug(title: str) -> str:
    """A group title as a file-name part: "Face B" -> "face_b"."""
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def screenshots(browser, name: str, made: dict[str, dict]) -> list[tuple[str, list[str]]]:
    """The open template after its run: its saved view, then each group not yet wholly shown, panned onto as a user
    does (``shift_to``). Returns (file name, the groups wholly on screen) for each screenshot."""
    groups = measure(browser)["groups"]
    show_run(browser, made)
    shots = [(f"{name}.png", groups_on_screen(measure(browser)))]
    browser.screenshot(SHOTS / shots[0][0])
    for group in groups:
        if any(group["title"] in shown for _, shown in shots):
            continue
        shift = shift_to(groups, group)
        browser.js(PAN, *shift)
        show_run(browser, made)
        shots.append((f"{name}-{slug(group['title'])}.png", groups_on_screen(measure(browser))))
        browser.screenshot(SHOTS / shots[-1][0])
        browser.js(PAN, -shift[0], -shift[1])
    return shots


def write_index(shots: dict[str, list[tuple[str, list[str]]]], real_weights: bool) -> None:
    """docs/screenshots/README.md: each template's screenshots and the groups each shows whole; removes the
    screenshots of an older run that this one did not make."""
    networks = ("the real weights" if real_weights else
                "the tests' networks of the real architectures with random weights (no model hub where they were "
                "made): their frames are textures, not a face")
    lines = ["# The shipped templates after a run", "",
             f"What a user sees in ComfyUI's web UI (1920x1080) after opening each template from Templates and "
             f"clicking Run, made by `tools/make_template_media.py` with {networks}. A grouped template is shown "
             "at its saved view, then panned onto each group not yet wholly shown.", ""]
    for name, made in shots.items():
        lines += [f"## {name}", ""]
        for file, groups in made:
            lines += [f"![{name} after a run" + (f": groups {', '.join(groups)}" if groups else "") + f"]({file})", ""]
    (SHOTS / "README.md").write_text("\n".join(lines), encoding="utf-8")
    for stale in set(SHOTS.glob("*.png")) - {SHOTS / f for made in shots.values() for f, _ in made}:
        stale.unlink()


def make_media(server, work: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """Every template opened, run and shot; its thumbnail from the videos it made."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    shots = {}
    with Browser(free_port(), window=SCREEN) as browser:
        open_app(browser, server.url)
        for name in TEMPLATES:
            t0 = time.monotonic()
            if name == "joyvasa_motion_material":
                upload_driving_template(server, work)
            open_template(browser, name)
            made = videos(click_run(server, browser))
            shots[name] = screenshots(browser, name, made)
            frames = [middle_frame(server.output_path(made[n])) for n in sorted(made, key=int)]
            cv2.imwrite(str(REPO / "workflows" / f"{name}.jpg"), thumbnail(frames), [cv2.IMWRITE_JPEG_QUALITY, 90])
            print(f"{name}: {len(made)} video(s), {len(shots[name])} screenshot(s) and the thumbnail written in "
                  f"{time.monotonic() - t0:.0f} s", flush=True)
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, help="a ComfyUI models folder with the real weights")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = make_base(Path(tmp) / "base")
        if args.models:
            (base / "models").rmdir()
            (base / "models").symlink_to(args.models.resolve(), target_is_directory=True)
        else:
            write_liveportrait(base / "models", "official")
            write_liveportrait(base / "models", "official", animal=True)
            write_joyvasa(base / "models")
        server = start_server(base)
        try:
            work = Path(tmp)
            upload_template_inputs(server, work, EXAMPLES / "portrait.png", EXAMPLES / "speech.wav",
                                   fixture_dir() / "chelsea.png")
            assert server.upload(driving_video(EXAMPLES / "portrait.png", work / "driving.mp4")) == "driving.mp4"
            write_index(make_media(server, work), real_weights=bool(args.models))
        finally:
            stop(server.process)
            (base / "custom_nodes" / server.pack_name).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
