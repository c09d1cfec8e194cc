"""Motion from a driving video's frames (joyvasa_core.pipeline.motion_from_video)."""

from __future__ import annotations

from ..joyvasa_core.pipeline import motion_from_video
from ..joyvasa_core.validate import bounds
from .errors import node_errors
from .memory import on_device
from .progress import ComfyProgress


class JoyVASAMotionFromVideo:
    DESCRIPTION = ("LivePortrait's video-driven motion: finds the face on every frame, crops one steady square around "
                   "it and reads head pose and expression with the motion extractor. Drives any portrait, mixes with "
                   "speech motion.")
    CATEGORY = "JoyVASA/motion"
    FUNCTION = "extract"
    RETURN_TYPES = ("JOYVASA_MOTION",)
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("One motion frame per video frame.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "liveportrait": ("JOYVASA_LIVEPORTRAIT", {"tooltip": "Its motion extractor reads the frames."}),
                "images": ("IMAGE", {"tooltip": "The driving video's frames (e.g. Get Video Components)."}),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 1.0, "tooltip": "The video's "
                        "frame rate (rounded to whole frames per second)."}),
                "crop": ("BOOLEAN", {"default": True, "tooltip": "Crop around the face (off: the frames already show "
                         "just the face, resized to 256)."}),
                "batch_size": ("INT", {"default": 16, **bounds("batch_size"), "tooltip": "Frames per motion-extractor "
                               "pass."}),
            },
            "optional": {"face_detector": ("JOYVASA_FACE_DETECTOR", {"tooltip": "Default: the bundled one."})},
        }

    def extract(self, liveportrait, images, fps, crop, batch_size, face_detector=None):
        with node_errors("JoyVASA Motion From Video"):
            models = on_device(liveportrait)
            return (motion_from_video(models, images, face_detector, fps=fps, crop=crop, batch_size=batch_size,
                                      progress=ComfyProgress()),)
