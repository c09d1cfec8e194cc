"""Writes the shipped workflows (UI format, ``workflows/*.json``) and their API twins (``workflows/api/*.json``)
from the compact graphs below, laid out on a grid so each reads at 100% zoom from its saved view (a larger one in
ComfyUI groups, each whole on a screen) with no node over another, as a user sees it once a photo is picked and a
run is done (the photo, the players, the preview images, Save Motion's line; only the widgets the web extension shows
for the saved values). Widget order, sockets and the API twins come from a
real ComfyUI's ``/object_info`` (started here on the test models, as the tests do), so the files match what the web
UI itself would save and queue.

Usage: ``.venv/bin/python tools/make_workflows.py`` (then review the diff; the tests check the files).
"""

from __future__ import annotations

import json
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "comfyui")]

from comfyui_harness import make_base, start_server, stop  # noqa: E402
from model_folders import write_joyvasa, write_liveportrait  # noqa: E402
from ui_to_api import widget_names  # noqa: E402

OUT = REPO / "workflows"
X0 = 80  # the graph's left edge on screen at scale 1: right of the side bar
# where columns start: below the tab bar, the first one also below the workflow name floating over its top left,
# a sixth one below the Run bar
Y_FIRST, Y_OTHERS, Y_SIXTH = 170, 125, 220
COLUMN_TOP = {0: Y_FIRST, 5: Y_SIXTH}
# five columns stay left of the Run bar and the minimap on a 1920x1080 screen; a sixth one short enough to stay
# between them holds the main template's Motion Preview plot (beside the video) or the frames template's note
COLUMN_W, GAP_X, GAP_Y = 280, 20, 30
TITLE_H = 30
# a graph larger than one screen is laid out in ComfyUI groups, each whole on screen at 100% when the view is on it:
# the groups' top edge (below the tab bar and the workflow name), their title bar and the margin around their nodes
GROUP_TOP, GROUP_TITLE_H, GROUP_PAD = 140, 34, 10
PLOT_W = 1024  # the Motion Preview's plot width (its height follows: six 120 px panels and a 40 px axis)
PREVIEW_IMAGE_H = 224  # a Preview Image's picture: the least the 1.32 frontend gives it (the picture fits inside)
# extra body height where a node draws more than its widgets, as it is once a photo is picked and a run is done:
# the picked photo (a square one fills the node's width), the audio player, the video players at the node's width
# (square videos), Save Motion's line naming the file it wrote, and Warp and Render's last progress preview frame
# (the frontend keeps a node's live preview after the run when the node shows no output of its own; Render Video's
# player takes its place there, taller than the preview)
EXTRA_H = {"LoadImage": 270, "LoadAudio": 70, "LoadVideo": COLUMN_W + 28, "SaveVideo": COLUMN_W + 20,
           "JoyVASARenderVideo": COLUMN_W + 20, "JoyVASASaveMotion": 24, "MarkdownNote": 0,
           "JoyVASAWarpAndRender": PREVIEW_IMAGE_H}
PACK_PREFIX = "JoyVASA "  # the pack's badge already names it above every node: titles drop it to stay whole
# the upload buttons' and the audio player's values
FRONTEND_VALUES = {"LoadImage": ["image"], "LoadVideo": ["image"], "LoadAudio": [None, None]}

FACE = {"mode": "human", "crop": "auto", "face_index": 0, "face_order": "largest", "scale": 2.3, "vx_ratio": 0.0,
        "vy_ratio": -0.125, "alpha": "drop", "box_x": 0, "box_y": 0, "box_w": 0, "box_h": 0}
SAMPLE = {"seed": 0, "cfg_scale": 4.0, "sampler": "ddpm", "steps": 50, "smoothing": "ema", "smoothing_alpha": 0.01,
          "leading_silence": True, "lag_compensation": True}
KEYPOINTS = {"preset": "auto", "relative_motion": "preset", "stitching": "preset", "lip_normalization": "preset",
             "driving_multiplier": 0.0, "animation_region": "all"}
RENDER = {"paste_back": True, "batch_size": 1, "image_index": 0}
VIDEO = {"filename_prefix": "JoyVASA/talking", "format": "mp4", "crf": 18, "save_output": True}
LP = {"variant": "human", "device": "auto", "dtype": "auto", "download": "download missing files"}
MOTION_MODEL = {"checkpoint": "motion_generator_hubert_chinese.pt", "template": "motion_template.pkl",
                "device": "auto", "dtype": "fp32", "download": "download missing files"}
MODELS_NOTE = (
    "**Models** in ComfyUI's `models/`: `liveportrait/` (LivePortrait's five networks, Kijai/LivePortrait_safetensors "
    "or KwaiVGI/LivePortrait), `joyvasa/` (`motion_generator_hubert_chinese.pt`, `motion_template.pkl` from "
    "jdh-algo/JoyVASA)."
)


def node(nid: int, kind: str, col: int, widgets: dict | None = None, links: dict | None = None,
         title: str | None = None, text: str | None = None, image_h: int = 0, group: str | None = None,
         band: int = 0) -> dict:
    """One node of a compact graph; ``image_h``: the height of the image a Preview Image shows after a run;
    ``group``: the ComfyUI group it sits in, ``band``: which row of groups (0 opens on screen, the next below)."""
    return {"id": nid, "type": kind, "col": col, "widgets": widgets or {}, "links": links or {}, "title": title,
            "text": text, "image_h": image_h, "group": group, "band": band}


def talking_portrait(render: str = "stream", animal: bool = False, save_motion: bool = False) -> list[dict]:
    """Portrait + speech -> mp4; ``render`` 'stream' (Render Video) or 'frames' (IMAGE into Create Video)."""
    image = "animal.png" if animal else "portrait.png"
    face = {**FACE, "mode": "animal"} if animal else FACE
    lp = {**LP, "variant": "animal_v1.1"} if animal else LP
    nodes = [
        node(1, "LoadImage", 0, {"image": image}),
        node(2, "LoadAudio", 0, {"audio": "speech.wav"}),
        node(3, "JoyVASALivePortraitLoader", 1, lp),
        node(4, "JoyVASAMotionModelLoader", 1, MOTION_MODEL),
        node(5, "JoyVASALoadReferenceFace", 1, face, {"image": (1, 0)}),
        node(6, "JoyVASAExtractAppearance", 2, {"image_index": 0}, {"liveportrait": (3, 0), "face": (5, 0)}),
        node(7, "JoyVASAEncodeAudio", 2, {}, {"audio": (2, 0), "motion_model": (4, 0)}),
        node(8, "JoyVASASampleMotionDiffusion", 2, SAMPLE, {"motion_model": (4, 0), "audio_features": (7, 0)}),
        node(9, "JoyVASAComputeTargetKeypoints", 3, KEYPOINTS,
             {"liveportrait": (3, 0), "appearance": (6, 0), "motion": (8, 0)}),
    ]
    render_links = {"liveportrait": (3, 0), "appearance": (6, 0), "keypoints": (9, 0), "face": (5, 0),
                    "audio": (2, 0)}
    if render == "stream":
        nodes.append(node(10, "JoyVASARenderVideo", 4, {**RENDER, **VIDEO}, render_links))
    else:
        nodes += [
            node(10, "JoyVASAWarpAndRender", 3, RENDER, render_links),
            node(11, "CreateVideo", 4, {"fps": 25.0}, {"images": (10, 0), "audio": (10, 1), "fps": (10, 2)}),
            node(12, "SaveVideo", 4, {"filename_prefix": "JoyVASA/talking", "format": "mp4", "codec": "h264"},
                 {"video": (11, 0)}),
        ]
    if save_motion:  # the main template: the motion saved, and what a user checks first (the crop, the motion)
        nodes += [
            node(13, "JoyVASASaveMotion", 2, {"filename_prefix": "JoyVASA/motion"}, {"motion": (8, 0)}),
            node(15, "JoyVASAMotionPreview", 2, {"width": PLOT_W, "audio_delay": 0.0},
                 {"motion": (8, 0), "audio": (2, 0)}),
            node(16, "PreviewImage", 3, {}, {"images": (5, 1)}, title="Cropped face", image_h=PREVIEW_IMAGE_H),
            node(17, "PreviewImage", 5, {}, {"images": (15, 0)}, title="Motion Preview plot",
                 image_h=PREVIEW_IMAGE_H),
        ]
    what = "an animal photo (whole image, animal weights)" if animal else "a portrait"
    out = ("Render Video streams the frames into an mp4 (any length, flat memory)" if render == "stream" else
           "Warp and Render gives IMAGE frames (all in memory: short clips, or to post-process them) for Create Video")
    # the frames template's third column ends with Warp and Render's preview: its note goes to the short sixth one
    note_col = 3 if render == "stream" else 5
    nodes.append(node(20, "MarkdownNote", note_col, text=f"Pick {what} in **Load Image** and speech in **Load Audio**, "
                      f"then queue. {out}.\n\n{MODELS_NOTE}"))
    return nodes


def two_faces() -> list[dict]:
    """One speech, one motion, two faces: each face gets its own appearance, keypoints and video. Too large for one
    screen once the photos and players are shown: the shared speech and models, then each face, in groups."""
    shared = "Speech and motion"
    nodes = [
        node(2, "LoadAudio", 0, {"audio": "speech.wav"}, group=shared),
        node(3, "JoyVASALivePortraitLoader", 0, LP, group=shared),
        node(4, "JoyVASAMotionModelLoader", 0, MOTION_MODEL, group=shared),
        node(7, "JoyVASAEncodeAudio", 1, {}, {"audio": (2, 0), "motion_model": (4, 0)}, group=shared),
        node(8, "JoyVASASampleMotionDiffusion", 1, SAMPLE, {"motion_model": (4, 0), "audio_features": (7, 0)},
             group=shared),
    ]
    for tag, offset, band in (("A", 0, 0), ("B", 20, 1)):
        group, face = f"Face {tag}", 5 + offset
        nodes += [
            node(1 + offset, "LoadImage", 2, {"image": "portrait_b.png" if offset else "portrait.png"},
                 title=f"Load Image (face {tag})", group=group, band=band),
            node(face, "JoyVASALoadReferenceFace", 2, FACE, {"image": (1 + offset, 0)},
                 title=f"Load Reference Face ({tag})", group=group, band=band),
            node(6 + offset, "JoyVASAExtractAppearance", 3, {"image_index": 0},
                 {"liveportrait": (3, 0), "face": (face, 0)}, title=f"Extract Appearance ({tag})", group=group,
                 band=band),
            node(9 + offset, "JoyVASAComputeTargetKeypoints", 3, KEYPOINTS,
                 {"liveportrait": (3, 0), "appearance": (6 + offset, 0), "motion": (8, 0)},
                 title=f"Compute Target Keypoints ({tag})", group=group, band=band),
            node(10 + offset, "JoyVASARenderVideo", 4,
                 {**RENDER, **VIDEO, "filename_prefix": f"JoyVASA/face_{tag.lower()}"},
                 {"liveportrait": (3, 0), "appearance": (6 + offset, 0), "keypoints": (9 + offset, 0),
                  "face": (face, 0), "audio": (2, 0)}, title=f"Render Video ({tag})", group=group, band=band),
        ]
    return nodes


def reuse_motion() -> list[dict]:
    """A motion saved by Save Motion (e.g. from joyvasa_talking_portrait) played on another face, with its speech."""
    return [
        node(1, "LoadImage", 0, {"image": "portrait_b.png"}),
        node(2, "LoadAudio", 0, {"audio": "speech.wav"}),
        node(3, "JoyVASALivePortraitLoader", 1, LP),
        node(5, "JoyVASALoadReferenceFace", 1, FACE, {"image": (1, 0)}),
        node(14, "JoyVASALoadMotion", 2, {"motion_file": "JoyVASA/motion_00001_.safetensors [output]"}),
        node(6, "JoyVASAExtractAppearance", 2, {"image_index": 0}, {"liveportrait": (3, 0), "face": (5, 0)}),
        node(9, "JoyVASAComputeTargetKeypoints", 2, KEYPOINTS,
             {"liveportrait": (3, 0), "appearance": (6, 0), "motion": (14, 0)}),
        node(10, "JoyVASARenderVideo", 3, {**RENDER, **VIDEO, "filename_prefix": "JoyVASA/reused"},
             {"liveportrait": (3, 0), "appearance": (6, 0), "keypoints": (9, 0), "face": (5, 0), "audio": (2, 0)}),
        node(20, "MarkdownNote", 3, text="**Load Motion** lists the motions Save Motion wrote to `output/` (the "
             "talking-portrait workflow saves one): the same performance on another face, no sampling. Load Audio "
             "gives the sound track."),
    ]


def motion_material() -> list[dict]:
    """Every motion node: the speech's lips with a driving video's head, edited, blinked, crossfaded into a driving
    template, previewed, exported and rendered. Groups: the portrait and the speech's motion (with the crop to
    check), the render, the note; below them the motion material."""
    inputs, render, note, material = "Portrait and speech", "Render", "About", "Motion material"
    return [
        node(1, "LoadImage", 0, {"image": "portrait.png"}, group=inputs),
        node(2, "LoadAudio", 0, {"audio": "speech.wav"}, group=inputs),
        node(5, "JoyVASAFaceDetectorLoader", 0, {"detector": "auto", "device": "auto"}, group=inputs),
        node(3, "JoyVASALivePortraitLoader", 1, LP, group=inputs),
        node(4, "JoyVASAMotionModelLoader", 1, MOTION_MODEL, group=inputs),
        node(6, "JoyVASALoadReferenceFace", 1, FACE, {"image": (1, 0), "face_detector": (5, 0)}, group=inputs),
        node(14, "PreviewImage", 2, {}, {"images": (6, 1)}, title="Cropped face", image_h=PREVIEW_IMAGE_H,
             group=inputs),
        node(8, "JoyVASAEncodeAudio", 2, {}, {"audio": (2, 0), "motion_model": (4, 0)}, group=inputs),
        node(9, "JoyVASASampleMotionDiffusion", 2, {**SAMPLE, "lag_compensation": False},
             {"motion_model": (4, 0), "audio_features": (8, 0)}, group=inputs),
        # Warp and Render's preview makes the keypoints and the render one screen's height: the appearance goes
        # above the video nodes
        node(7, "JoyVASAExtractAppearance", 4, {"image_index": 0}, {"liveportrait": (3, 0), "face": (6, 0)},
             group=render),
        node(10, "JoyVASAComputeTargetKeypoints", 3, KEYPOINTS,
             {"liveportrait": (3, 0), "appearance": (7, 0), "motion": (24, 0)}, group=render),
        node(11, "JoyVASAWarpAndRender", 3, {**RENDER, "batch_size": 4},
             {"liveportrait": (3, 0), "appearance": (7, 0), "keypoints": (10, 0), "face": (6, 0), "audio": (2, 0)},
             group=render),
        node(12, "CreateVideo", 4, {"fps": 25.0}, {"images": (11, 0), "audio": (11, 1), "fps": (11, 2)},
             group=render),
        node(13, "SaveVideo", 4, {"filename_prefix": "JoyVASA/material", "format": "auto", "codec": "auto"},
             {"video": (12, 0)}, group=render),
        node(28, "MarkdownNote", 5, text=MATERIAL_NOTE, group=note),
        node(16, "LoadVideo", 0, {"file": "driving.mp4"}, group=material, band=1),
        node(17, "GetVideoComponents", 0, {}, {"video": (16, 0)}, group=material, band=1),
        node(18, "JoyVASAMotionFromVideo", 1, {"fps": 25.0, "crop": True, "batch_size": 16},
             {"liveportrait": (3, 0), "images": (17, 0), "fps": (17, 2), "face_detector": (5, 0)},
             group=material, band=1),
        node(19, "JoyVASAFitMotion", 1, {"start": 0, "stop": 0, "length": 50, "mode": "pingpong"},
             {"motion": (18, 0)}, group=material, band=1),
        node(23, "JoyVASALoadDrivingTemplate", 1, {"template_file": "driving_template.pkl"}, group=material,
             band=1),
        node(20, "JoyVASAMixMotion", 2, {"fit": "loop"}, {"expression": (9, 0), "head": (19, 0)}, group=material,
             band=1),
        node(21, "JoyVASAEditMotion", 2, {"head_rotation": 1.2, "translation": 1.0, "scale": 1.0,
                                          "expression": 1.0, "lips": 1.3, "pitch": 0.0, "yaw": 5.0, "roll": 0.0},
             {"motion": (20, 0)}, group=material, band=1),
        node(22, "JoyVASAAddBlinks", 2, {"mode": "if_none", "rate": 15.0, "duration": 0.25, "seed": 0,
                                         "openness": 1.0}, {"motion": (21, 0)}, group=material, band=1),
        node(24, "JoyVASACrossfadeMotion", 3, {"frames": 12}, {"first": (22, 0), "second": (23, 0)},
             group=material, band=1),
        node(25, "JoyVASAMotionPreview", 3, {"width": PLOT_W, "audio_delay": 0.08}, {"motion": (24, 0),
                                                                                  "audio": (2, 0)},
             group=material, band=1),
        node(27, "JoyVASAExportDrivingTemplate", 3, {"filename_prefix": "JoyVASA/driving"}, {"motion": (24, 0)},
             group=material, band=1),
        node(26, "PreviewImage", 4, {}, {"images": (25, 0)}, title="Motion Preview plot", image_h=PREVIEW_IMAGE_H,
             group=material, band=1),
    ]


MATERIAL_NOTE = (
    "## JoyVASA motion as material\n\nThe speech gives the expression and lips (**Sample Motion**); a driving video "
    "gives the head (**Load Video** -> **Motion From Video**, ping-ponged to 2 s by **Fit Motion**); **Mix Motion** "
    "combines them, **Edit Motion** tones head and lips and turns the head 5 degrees, **Add Blinks** adds blinks if "
    "the motion has none, and **Crossfade Motion** continues into a LivePortrait driving template (.pkl, e.g. from "
    "LivePortrait's `-d` templates or FasterLivePortrait). **Motion Preview** plots the result with the speech, "
    "**Export Driving Template** writes it for LivePortrait tools, and the rest renders it onto the portrait.\n\n"
    "Put `driving.mp4` (a video of a face) and `driving_template.pkl` in ComfyUI's `input/` folder, or pick your "
    "own files. Models as in the talking-portrait workflow."
)


WORKFLOWS = {
    "joyvasa_talking_portrait": talking_portrait("stream", save_motion=True),
    "joyvasa_talking_portrait_frames": talking_portrait("frames"),
    "joyvasa_animal": talking_portrait("stream", animal=True),
    "joyvasa_two_faces": two_faces(),
    "joyvasa_reuse_motion": reuse_motion(),
    "joyvasa_motion_material": motion_material(),
}


def _sockets(info: dict) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, type) of the inputs drawn as sockets, and the widget names, in the frontend's order."""
    names, _ = widget_names(info)
    order = info.get("input_order") or {s: list(v) for s, v in info["input"].items()}
    sockets = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            if name not in names:
                sockets.append((name, info["input"][section][name][0]))
    return sockets, names


def _shown(info: dict, widget: str, values: dict) -> bool:
    """Whether the web extension shows ``widget`` for these values (its input spec's ``shown_when``, as
    joyvasa.js applyShownWhen reads it)."""
    spec = {**info["input"].get("required", {}), **info["input"].get("optional", {})}[widget]
    rule = spec[1].get("shown_when", {}) if len(spec) > 1 else {}
    return all(other not in values or values[other] in allowed for other, allowed in rule.items())


def _height(kind: str, info: dict | None, text: str | None, values: dict, extra: dict[str, int],
            image_h: int = 0) -> int:
    if info is None:  # a note: about 16 px a line of ~44 characters (measured in the 1.32 frontend at 280 px)
        return 40 + 16 * sum(1 + len(p) // 44 for p in (text or "").split("\n"))
    sockets, widgets = _sockets(info)
    rows = max(len(sockets), len(info["output"]))
    _, with_control = widget_names(info)
    shown = [w for w in widgets if _shown(info, w, values)]
    shown += [w for w in shown if w in with_control]  # a seed's "control after generate" row
    return 14 + 20 * rows + 24 * len(shown) + extra.get(kind, 0) + image_h


def _place(spec: list[dict], object_info: dict, column_w: int, gap_x: int) -> dict[int, tuple[int, int, int]]:
    """Each node's (x, y, height): stacked in its column; in a grouped graph each band of groups starts below the
    one above it (the group's title bar above its nodes)."""
    heights = {n["id"]: _height(n["type"], object_info.get(n["type"]), n["text"], n["widgets"], EXTRA_H, n["image_h"])
               for n in spec}
    places: dict[int, tuple[int, int, int]] = {}
    band_top = GROUP_TOP
    for band in sorted({n["band"] for n in spec}):
        column_y: dict[int, int] = {}
        for n in (n for n in spec if n["band"] == band):
            first = (GROUP_TOP + GROUP_TITLE_H + GROUP_PAD + TITLE_H if n["group"] else
                     COLUMN_TOP.get(n["col"], Y_OTHERS))
            y = column_y.get(n["col"], first + band_top - GROUP_TOP)
            places[n["id"]] = (X0 + n["col"] * (column_w + gap_x), y, heights[n["id"]])
            column_y[n["col"]] = y + heights[n["id"]] + GAP_Y + TITLE_H
        band_top = max(column_y.values()) - GAP_Y - TITLE_H + GROUP_PAD + GAP_Y
    return places


def _groups(spec: list[dict], places: dict[int, tuple[int, int, int]], column_w: int) -> list[dict]:
    """ComfyUI groups around their nodes (titles included), in the order they first appear in ``spec``."""
    groups = []
    for title in dict.fromkeys(n["group"] for n in spec if n["group"]):
        boxes = [places[n["id"]] for n in spec if n["group"] == title]
        left, top = min(x for x, _, _ in boxes), min(y for _, y, _ in boxes) - TITLE_H
        right, bottom = max(x for x, _, _ in boxes) + column_w, max(y + h for _, y, h in boxes)
        groups.append({"id": len(groups) + 1, "title": title, "color": "#3f789e", "font_size": 24, "flags": {},
                       "bounding": [left - GROUP_PAD, top - GROUP_PAD - GROUP_TITLE_H, right - left + 2 * GROUP_PAD,
                                    bottom - top + 2 * GROUP_PAD + GROUP_TITLE_H]})
    return groups


def build(name: str, spec: list[dict], object_info: dict, column_w: int = COLUMN_W, gap_x: int = GAP_X) -> dict:
    by_id = {n["id"]: n for n in spec}
    links: list[list] = []
    outputs: dict[tuple[int, int], list[int]] = {}
    ui_nodes = []
    places = _place(spec, object_info, column_w, gap_x)
    for order, n in enumerate(spec):
        info = object_info.get(n["type"])
        x, y, h = places[n["id"]]
        ui = {"id": n["id"], "type": n["type"], "pos": [x, y], "size": [column_w, h], "flags": {}, "order": order,
              "mode": 0, "inputs": [], "outputs": [], "properties": {"Node name for S&R": n["type"]}}
        display = (info or {}).get("display_name", "")
        if n["title"] or display.startswith(PACK_PREFIX):
            ui["title"] = n["title"] or display.removeprefix(PACK_PREFIX)
        if info is None:
            ui["widgets_values"] = [n["text"]]
            ui_nodes.append(ui)
            continue
        sockets, widgets = _sockets(info)
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        entries = [{"name": socket, "type": kind, "link": None} for socket, kind in sockets]
        entries += [{"name": w, "type": "COMBO" if isinstance(specs[w][0], list) else specs[w][0],
                     "widget": {"name": w}, "link": None} for w in widgets]
        for slot, entry in enumerate(entries):
            if entry["name"] in n["links"]:
                src, src_slot = n["links"][entry["name"]]
                link_type = object_info[by_id[src]["type"]]["output"][src_slot]
                links.append([len(links) + 1, src, src_slot, n["id"], slot, link_type])
                entry["link"] = len(links)
                outputs.setdefault((src, src_slot), []).append(len(links))
        ui["inputs"] = entries
        _, with_control = widget_names(info)
        values = []
        for w in widgets:
            values.append(n["widgets"][w])
            if w in with_control:
                values.append("fixed")
        ui["widgets_values"] = values + FRONTEND_VALUES.get(n["type"], [])
        ui["outputs"] = [{"name": out_name, "type": out_type, "links": None}
                         for out_type, out_name in zip(info["output"], info["output_name"], strict=True)]
        ui_nodes.append(ui)
    for ui in ui_nodes:
        for slot, out in enumerate(ui["outputs"]):
            out["links"] = outputs.get((ui["id"], slot))
    workflow_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"comfyui-joyvasa/workflows/{name}"))
    return {"id": workflow_id, "revision": 0, "last_node_id": max(by_id), "last_link_id": len(links),
            "nodes": ui_nodes, "links": links, "groups": _groups(spec, places, column_w), "config": {},
            "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}}, "version": 0.4}


def main() -> int:
    from ui_to_api import convert

    with tempfile.TemporaryDirectory() as tmp:
        base = make_base(Path(tmp))
        write_liveportrait(base / "models", "official")
        write_liveportrait(base / "models", "official", animal=True)
        write_joyvasa(base / "models")
        server = start_server(base)
        try:
            object_info = server.object_info()
        finally:
            stop(server.process)
            (base / "custom_nodes").joinpath(server.pack_name).unlink()
    (OUT / "api").mkdir(exist_ok=True)
    for name, spec in WORKFLOWS.items():
        ui = build(name, spec, object_info)
        (OUT / f"{name}.json").write_text(json.dumps(ui, indent=1) + "\n", encoding="utf-8")
        api = convert(ui, object_info)
        (OUT / "api" / f"{name}.json").write_text(json.dumps(api, indent=1) + "\n", encoding="utf-8")
        print(f"{name}: {len(ui['nodes'])} nodes, {len(ui['links'])} links")
    return 0


if __name__ == "__main__":
    sys.exit(main())
