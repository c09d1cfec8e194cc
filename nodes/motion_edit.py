"""Mix, edit, fit and crossfade motions (joyvasa_core.motion.edit states every rule; these only map widgets)."""

from __future__ import annotations

from ..joyvasa_core.motion.edit import FIT_MODES, crossfade, mix, offset_pose, scale_parts
from ..joyvasa_core.pipeline import fit_motion
from ..joyvasa_core.validate import bounds
from .errors import node_errors

MOTION = ("JOYVASA_MOTION",)


def _motion(tip: str) -> tuple:
    return ("JOYVASA_MOTION", {"tooltip": tip})
FIT_TIP = ("How a shorter head/lips motion fills the expression motion's length: loop, pingpong (back and forth) or "
           "hold its last frame; a longer one is cut.")


def _multiplier(tip: str) -> tuple:
    return ("FLOAT", {"default": 1.0, **bounds("multiplier"), "step": 0.05, "tooltip": tip})


def _degrees(tip: str) -> tuple:
    return ("FLOAT", {"default": 0.0, **bounds("pose_offset"), "step": 0.5, "tooltip": tip})


class JoyVASAMixMotion:
    DESCRIPTION = ("Expression from one motion, head pose from another, lips from a third: e.g. the head of a "
                   "driving video with the lips of the speech. The result has the expression motion's length and fps.")
    CATEGORY = "JoyVASA/motion"
    FUNCTION = "mix"
    RETURN_TYPES = MOTION
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("The mixed motion.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "expression": ("JOYVASA_MOTION", {"tooltip": "Gives the expression, the eyes, the length and fps."}),
                "fit": (list(FIT_MODES), {"default": "loop", "tooltip": FIT_TIP}),
            },
            "optional": {
                "head": ("JOYVASA_MOTION", {"tooltip": "Gives head rotation, translation and scale."}),
                "lips": ("JOYVASA_MOTION", {"tooltip": "Gives the lip keypoints of the expression."}),
            },
        }

    def mix(self, expression, fit, head=None, lips=None):
        with node_errors("JoyVASA Mix Motion"):
            return (mix(expression, head=head, lips=lips, fit=fit),)


class JoyVASAEditMotion:
    DESCRIPTION = ("Tone each part of a motion up or down (multipliers scale the change from frame 0: 0 holds the "
                   "part still, 1 keeps it) and turn the whole clip by a constant head pose.")
    CATEGORY = "JoyVASA/motion"
    FUNCTION = "edit"
    RETURN_TYPES = MOTION
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("The edited motion.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "motion": _motion("The motion to edit."),
                "head_rotation": _multiplier("Head turning and nodding."),
                "translation": _multiplier("Head sliding in the picture."),
                "scale": _multiplier("Head moving closer and away."),
                "expression": _multiplier("The whole expression (lips included)."),
                "lips": _multiplier("The lips only, on top of expression."),
                "pitch": _degrees("Constant nod, degrees (positive = chin down)."),
                "yaw": _degrees("Constant turn, degrees."),
                "roll": _degrees("Constant tilt, degrees."),
            }
        }

    def edit(self, motion, head_rotation, translation, scale, expression, lips, pitch, yaw, roll):
        with node_errors("JoyVASA Edit Motion"):
            out = scale_parts(motion, rotation=head_rotation, translation=translation, scale=scale,
                              expression=expression, lips=lips)
            return (offset_pose(out, pitch=pitch, yaw=yaw, roll=roll),)


class JoyVASAFitMotion:
    DESCRIPTION = "Trim a motion, then loop, ping-pong or hold it to a length in frames."
    CATEGORY = "JoyVASA/motion"
    FUNCTION = "fit"
    RETURN_TYPES = MOTION
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("The trimmed and fitted motion.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "motion": _motion("The motion to trim and fit."),
                "start": ("INT", {"default": 0, **bounds("length"), "tooltip": "First frame kept."}),
                "stop": ("INT", {"default": 0, **bounds("length"), "tooltip": "Frame after the last kept "
                         "(0 = to the end)."}),
                "length": ("INT", {"default": 0, **bounds("length"), "tooltip": "Frames out (0 = the "
                           "trimmed length)."}),
                "mode": (list(FIT_MODES), {"default": "loop", "tooltip": "How to reach a longer length."}),
            }
        }

    def fit(self, motion, start, stop, length, mode):
        with node_errors("JoyVASA Fit Motion"):
            return (fit_motion(motion, start, stop, length, mode),)


class JoyVASACrossfadeMotion:
    DESCRIPTION = ("One motion after the other, blended over the overlap (at most the shorter one). The second is "
                   "retimed to the first's fps.")
    CATEGORY = "JoyVASA/motion"
    FUNCTION = "crossfade"
    RETURN_TYPES = MOTION
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("first + second minus the overlap, in frames.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "first": _motion("Plays first; its lips rule how the result is composed."),
                "second": _motion("Plays after the overlap."),
                "frames": ("INT", {"default": 12, **bounds("length"), "tooltip": "Overlap in frames "
                           "(0 = a cut)."}),
            }
        }

    def crossfade(self, first, second, frames):
        with node_errors("JoyVASA Crossfade Motion"):
            return (crossfade(first, second, frames),)
