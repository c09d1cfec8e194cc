"""Draw a motion over time as an IMAGE (joyvasa_core.motion.preview)."""

from __future__ import annotations

from ..joyvasa_core.motion.preview import motion_preview_image
from .errors import node_errors


class JoyVASAMotionPreview:
    DESCRIPTION = ("Plots head rotation, translation, scale, mouth and eye opening over time, with the speech "
                   "underneath: check a motion before rendering minutes of video.")
    CATEGORY = "JoyVASA/motion"
    FUNCTION = "preview"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("plot",)
    OUTPUT_TOOLTIPS = ("The plot, one image.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "motion": ("JOYVASA_MOTION", {"tooltip": "The motion to draw."}),
                "width": ("INT", {"default": 1024, "min": 320, "max": 8192, "step": 16, "tooltip": "Image width in "
                          "pixels (the height follows the panels)."}),
                "audio_delay": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip": "Where "
                                "the speech starts, in seconds after frame 0 (0 with lag compensation, the default; "
                                "0.08 for the reference's timing)."}),
            },
            "optional": {"audio": ("AUDIO", {"tooltip": "The speech, drawn under the curves."})},
        }

    def preview(self, motion, width, audio_delay, audio=None):
        with node_errors("JoyVASA Motion Preview"):
            wave = rate = None
            if audio is not None:
                wave, rate = audio["waveform"][0], int(audio["sample_rate"])
            return (motion_preview_image(motion, wave, rate, width=width, audio_delay=audio_delay),)
