"""ComputeTargetKeypoints: the motion applied to this face's keypoints (relative to the motion's first frame),
with stitching and lip normalisation, as the reference web demo or command line does."""

from __future__ import annotations

from ..joyvasa_core.keypoints import REGIONS
from ..joyvasa_core.pipeline import KEYPOINT_PRESETS, compute_target_keypoints, keypoint_options
from ..joyvasa_core.validate import bounds
from .errors import node_errors
from .memory import on_device
from .progress import ComfyProgress

DISPLAY = "JoyVASA Compute Target Keypoints"
SWITCH = ["preset", "on", "off"]


def _switch(value: str) -> bool | None:
    return None if value == "preset" else value == "on"


class JoyVASAComputeTargetKeypoints:
    DESCRIPTION = (
        "Turns the motion into the driving keypoints of every frame. Presets: web = the reference web demo (relative "
        "motion with the expression-friendly multiplier, stitching, lip normalisation; the published results), cli = "
        "the reference command line (none of those, multiplier 1.10), animal = the animal path (no stitching, source "
        "scale). auto = animal for an animal face, else web. The switches override single features of the preset."
    )
    CATEGORY = "JoyVASA/motion"
    FUNCTION = "compute"
    RETURN_TYPES = ("JOYVASA_KEYPOINTS",)
    RETURN_NAMES = ("keypoints",)
    OUTPUT_TOOLTIPS = ("Driving keypoints x_d per frame, with the options used.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "liveportrait": ("JOYVASA_LIVEPORTRAIT",),
                "appearance": ("JOYVASA_APPEARANCE",),
                "motion": ("JOYVASA_MOTION",),
                "preset": (list(KEYPOINT_PRESETS), {"default": "auto"}),
                "relative_motion": (SWITCH, {"default": "preset", "tooltip": "On: the speech moves this face from "
                                    "its own expression, scaled to the size of its features, so it keeps its look; "
                                    "off: every frame takes the sampled expression as it is (the command line's "
                                    "look, stronger on faces unlike the average). preset: web on, cli off."}),
                "stitching": (SWITCH, {"default": "preset", "tooltip": "Keep the shoulders still so the face can be "
                              "pasted back into the photo."}),
                "lip_normalization": (SWITCH, {"default": "preset", "tooltip": "Close an open-mouthed source first, "
                                      "so the speech opens it."}),
                "driving_multiplier": ("FLOAT", {"default": 0.0, **bounds("driving_multiplier"), "step": 0.01,
                                       "tooltip": "How strongly the face moves: above 1 livelier lips and "
                                       "expressions, below 1 calmer. 0 keeps the preset's (1.0 for web, 1.1 for "
                                       "cli)."}),
                "animation_region": (list(REGIONS), {"default": "all", "tooltip": "all; exp = expression without "
                                     "head rotation; pose = head motion, source expression; lip = lip rows only; "
                                     "eyes = like pose (JoyVASA has no eye motion of its own)."}),
            }
        }

    def compute(self, liveportrait, appearance, motion, preset, relative_motion, stitching, lip_normalization,
                driving_multiplier, animation_region):
        with node_errors(DISPLAY):
            options = keypoint_options(preset, appearance.mode, relative_adjustments=_switch(relative_motion),
                                       stitching=_switch(stitching), normalize_lip=_switch(lip_normalization),
                                       driving_multiplier=driving_multiplier, animation_region=animation_region)
            models = on_device(liveportrait)
            return (compute_target_keypoints(models, appearance, motion, options, ComfyProgress()),)
