"""Makes what users see of the shipped templates: a thumbnail for the Templates dialog (``workflows/<name>.jpg``, a
frame of the video the template renders from the shipped example photo and speech) and a screenshot of each
template after a run at 1920x1080 (``docs/screenshots/<name>.png``).

It does what a user does, in a real ComfyUI and headless Chromium (as the browser tests): opens each template from
Templates, clicks Run, waits for the players. Networks: ``--models DIR`` (a ComfyUI ``models`` folder with the real
weights) or, by default, the tests' networks of the real architectures filled by the fixture rule
(tests/model_folders.py): their frames are textures, not a face, until the tool is run with real weights.

joyvasa_motion_material is left out: it needs a driving video and a driving template of the user's own.

Usage: ``.venv/bin/python tools/make_template_media.py [--models DIR]`` (then review the images).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "comfyui")]

from comfyui_harness import free_port, make_base, start_server, stop  # noqa: E402
from fixture_support import fixture_dir  # noqa: E402
from model_folders import write_joyvasa, write_liveportrait  # noqa: E402
from ui_driver import click_run, open_app, open_template, plays, upload_template_inputs, videos  # noqa: E402
from webdriver import Browser  # noqa: E402

EXAMPLES = REPO / "joyvasa_core" / "examples"
# in this order: joyvasa_reuse_motion plays the motion joyvasa_talking_portrait saves
TEMPLATES = ("joyvasa_talking_portrait", "joyvasa_talking_portrait_frames", "joyvasa_animal", "joyvasa_two_faces",
             "joyvasa_reuse_motion")
SCREEN = (1920, 1080)
THUMBNAIL = 512  # px, square: the dialog's cards crop to a square
# every player on the canvas at its middle frame, painted (a fresh player shows a blank first frame)
SHOW_MIDDLE = """
const players = Array.from(document.querySelectorAll(".comfy-img-preview video"));
await Promise.all(players.map((v) => new Promise((done) => {
    v.addEventListener("seeked", done, {once: true});
    v.currentTime = v.duration / 2;
})));
await new Promise((r) => setTimeout(r, 500));
"""


def middle_frame(path: Path) -> np.ndarray:
    """The video's middle frame, BGR."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    return frames[len(frames) // 2]


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """Centre square of ``frame`` at THUMBNAIL px."""
    h, w = frame.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return cv2.resize(frame[top : top + side, left : left + side], (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA)


def make_media(server, shots: Path) -> None:
    shots.mkdir(parents=True, exist_ok=True)
    with Browser(free_port(), window=SCREEN) as browser:
        open_app(browser, server.url)
        for name in TEMPLATES:
            open_template(browser, name)
            made = videos(click_run(server, browser))
            for node_id, video in made.items():
                plays(browser, node_id, video["filename"], timeout=60)
            browser.js_async(SHOW_MIDDLE)
            browser.screenshot(shots / f"{name}.png")
            first = server.output_path(made[min(made, key=int)])
            cv2.imwrite(str(REPO / "workflows" / f"{name}.jpg"), thumbnail(middle_frame(first)),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
            print(f"{name}: {len(made)} video(s), screenshot and thumbnail written")


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
            upload_template_inputs(server, Path(tmp), EXAMPLES / "portrait.png", EXAMPLES / "speech.wav",
                                   fixture_dir() / "chelsea.png")
            make_media(server, REPO / "docs" / "screenshots")
        finally:
            stop(server.process)
            (base / "custom_nodes" / server.pack_name).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
