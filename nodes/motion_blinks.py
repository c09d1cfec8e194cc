"""Add blinks to a motion and set how open the eyes are (joyvasa_core.motion.blinks)."""

from __future__ import annotations

from ..joyvasa_core.motion.blinks import BLINK_MODES, BlinkOptions, apply_blinks
from ..joyvasa_core.validate import bounds
from .errors import node_errors


class JoyVASAAddBlinks:
    DESCRIPTION = ("Blinks on a natural, seeded schedule, rendered through LivePortrait's eye-retargeting network "
                   "(needs the stitching/retargeting file and a face with detected eyes). if_none adds them only when "
                   "the motion has none.")
    CATEGORY = "JoyVASA/motion"
    FUNCTION = "blink"
    RETURN_TYPES = ("JOYVASA_MOTION",)
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("The motion with its eye-openness track.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "motion": ("JOYVASA_MOTION", {"tooltip": "The motion to add blinks to."}),
                "mode": (list(BLINK_MODES), {"default": "if_none", "tooltip": "off: openness only; on: add blinks; "
                         "if_none: add them when the eye keypoints show none."}),
                "rate": ("FLOAT", {"default": 15.0, **bounds("blink_rate"), "step": 0.5, "tooltip": "Blinks per "
                         "minute on average (people: 15-20)."}),
                "duration": ("FLOAT", {"default": 0.25, **bounds("blink_duration"), "step": 0.01, "tooltip": "Seconds "
                             "from open to closed to open."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF, "tooltip": "Same seed, same blinks."}),
                "openness": ("FLOAT", {"default": 1.0, **bounds("openness"), "step": 0.05, "tooltip": "Eye "
                             "opening between blinks: 1 = the portrait's own."}),
            }
        }

    def blink(self, motion, mode, rate, duration, seed, openness):
        with node_errors("JoyVASA Add Blinks"):
            options = BlinkOptions(mode=mode, rate=rate, duration=duration, seed=seed, openness=openness)
            return (apply_blinks(motion, options),)
