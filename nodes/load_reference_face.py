"""LoadReferenceFace: the portrait (IMAGE, optional MASK) -> the face crop(s) the networks see."""

from __future__ import annotations

import logging

from ..joyvasa_core.face.reference import CROP_MODES, ReferenceOptions, loader_mask
from ..joyvasa_core.face.select import FACE_ORDERS
from ..joyvasa_core.pipeline import crop_previews, load_reference_face, reference_box
from ..joyvasa_core.validate import bounds
from .errors import node_errors

DISPLAY = "JoyVASA Load Reference Face"
log = logging.getLogger(__name__)
CROPS = list(CROP_MODES)
BOX_ONLY = {"shown_when": {"crop": ["box"]}}  # the box_* widgets mean something only for crop = box
ALPHA = ["drop", "white", "black"]


class JoyVASALoadReferenceFace:
    DESCRIPTION = (
        "Finds the face in the portrait and crops it the way LivePortrait was trained (scale 2.3, shifted up, "
        "rotated upright). crop: auto = a connected non-empty mask's box, else the detected face for humans and the "
        "whole image for animals; face = the detected face; box = the box_x/box_y/box_w/box_h rectangle (e.g. one "
        "face of a group photo, or an animal's head); mask = the mask's box; whole = no crop, the whole picture "
        "undistorted in the square (edges extended); squeeze = the whole picture resized to the square (the "
        "reference's command line and animal mode). Without a detector the bundled short-range one is used, then "
        "the full-range one if it finds no face."
    )
    CATEGORY = "JoyVASA/face"
    FUNCTION = "prepare"
    RETURN_TYPES = ("JOYVASA_FACE", "IMAGE")
    RETURN_NAMES = ("face", "crop_preview")
    OUTPUT_TOOLTIPS = ("The prepared face(s): crops, crop<->image transforms, landmarks, eye/lip openness.",
                       "The 512x512 crop(s), to check the framing.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The portrait (a batch gives one face per image)."}),
                "mode": (["human", "animal"], {"default": "human"}),
                "crop": (CROPS, {"default": "auto", "tooltip": "What the networks see: auto, the detected face, a box, "
                         "a mask's box, the whole picture undistorted (whole) or squeezed to a square like the "
                         "reference (squeeze)."}),
                "face_index": ("INT", {"default": 0, **bounds("face_index"), "tooltip": "Which face, in face_order, "
                               "when the photo holds several."}),
                "face_order": (list(FACE_ORDERS), {"default": "largest"}),
                "scale": ("FLOAT", {"default": 2.3, "min": 1.0, "max": 4.0, "step": 0.05, "tooltip": "Crop size "
                          "relative to the detected face (larger shows more hair and shoulders)."}),
                "vx_ratio": ("FLOAT", {"default": 0.0, "min": -1.0, "max": 1.0, "step": 0.005,
                             "tooltip": "Horizontal shift of the crop, in crop sizes."}),
                "vy_ratio": ("FLOAT", {"default": -0.125, "min": -1.0, "max": 1.0, "step": 0.005,
                             "tooltip": "Vertical shift of the crop, in crop sizes (negative = up)."}),
                "alpha": (ALPHA, {"default": "drop", "tooltip": "RGBA input: drop the alpha (as LoadImage does) or "
                          "composite a cut-out over white/black."}),
            },
            "optional": {
                "box_x": ("INT", {**BOX_ONLY, "default": 0, **bounds("box_side"), "tooltip": "crop box: left "
                          "edge of the region to animate, in image pixels."}),
                "box_y": ("INT", {**BOX_ONLY, "default": 0, **bounds("box_side"), "tooltip": "crop box: top "
                          "edge of the region, in image pixels."}),
                "box_w": ("INT", {**BOX_ONLY, "default": 0, **bounds("box_side"), "tooltip": "crop box: region "
                          "width in pixels (head and some hair: the crop is the square around it)."}),
                "box_h": ("INT", {**BOX_ONLY, "default": 0, **bounds("box_side"), "tooltip": "crop box: region "
                          "height in pixels."}),
                "face_detector": ("JOYVASA_FACE_DETECTOR",),
                "mask": ("MASK", {"tooltip": "Non-zero on the subject: crop to its box (crop auto or mask)."}),
            },
        }

    def prepare(self, image, mode, crop, face_index, face_order, scale, vx_ratio, vy_ratio, alpha, box_x=0, box_y=0,
                box_w=0, box_h=0, face_detector=None, mask=None):
        with node_errors(DISPLAY):
            box = reference_box(crop, box_x, box_y, box_w, box_h)
            options = ReferenceOptions(
                mode=mode, crop=crop, face_index=face_index, face_order=face_order, scale=scale,
                vx_ratio=vx_ratio, vy_ratio=vy_ratio, mask=loader_mask(mask, image, crop), alpha=alpha, box=box,
            )
            reference = load_reference_face(image, face_detector, options)
            for note in sorted({n for f in reference.faces for n in f.notes}):
                log.info("%s: note: %s", DISPLAY, note)
            return (reference, crop_previews(reference))
