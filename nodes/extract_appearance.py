"""ExtractAppearance: LivePortrait's per-source work (F's feature volume, M's keypoints, W's source compression),
done once however many frames are rendered."""

from __future__ import annotations

from ..joyvasa_core.pipeline import extract_appearance
from .errors import node_errors
from .memory import on_device


class JoyVASAExtractAppearance:
    DESCRIPTION = ("Runs the appearance and motion extractors on the face crop once: the identity the renderer "
                   "warps, and the source keypoints the motion is applied to.")
    CATEGORY = "JoyVASA/face"
    FUNCTION = "extract"
    RETURN_TYPES = ("JOYVASA_APPEARANCE",)
    RETURN_NAMES = ("appearance",)
    OUTPUT_TOOLTIPS = ("Feature volume, source keypoints and eye/lip openness of one face.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "liveportrait": ("JOYVASA_LIVEPORTRAIT",),
                "face": ("JOYVASA_FACE",),
                "image_index": ("INT", {"default": 0, "min": 0, "max": 4095, "tooltip": "Which image of a batched "
                                "reference to animate (use the same index in Warp and Render)."}),
            }
        }

    def extract(self, liveportrait, face, image_index):
        with node_errors("JoyVASA Extract Appearance"):
            return (extract_appearance(on_device(liveportrait), face, image_index),)
