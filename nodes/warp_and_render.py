"""WarpAndRender: the driving keypoints -> video frames (warping W + generator G, then paste-back into the photo)."""

from __future__ import annotations

from ..joyvasa_core.pipeline import silent_audio, warp_and_render
from ..joyvasa_core.validate import bounds
from .errors import node_errors
from .memory import on_device
from .progress import ComfyProgress

DISPLAY = "JoyVASA Warp and Render"
# the inputs both render nodes take (Render Video adds its file options)
RENDER_INPUTS = {
    "liveportrait": ("JOYVASA_LIVEPORTRAIT",),
    "appearance": ("JOYVASA_APPEARANCE",),
    "keypoints": ("JOYVASA_KEYPOINTS",),
    "paste_back": ("BOOLEAN", {"default": True, "tooltip": "Frames at the photo's size: the animated face put back "
                   "into the photo (needs stitching), or a whole-image crop's picture; off: the 512x512 crop."}),
    "batch_size": ("INT", {"default": 1, **bounds("batch_size"), "tooltip": "Frames per network pass: 1 is fastest "
                   "on a CPU, 8 or more on a GPU (more memory)."}),
    "image_index": ("INT", {"default": 0, "min": 0, "max": 4095, "tooltip": "The reference image to paste into (the "
                    "one given to Extract Appearance)."}),
}
FACE_INPUT = ("JOYVASA_FACE", {"tooltip": "The reference face, needed for paste-back."})


class JoyVASAWarpAndRender:
    DESCRIPTION = (
        "Renders every frame: warps the face's feature volume to the driving keypoints and decodes it, batch_size "
        "frames at a time, then pastes the face back into the full photo (needs the face input and stitching, as in "
        "the reference) or, for a whole-image crop (animals), takes the picture back out at the photo's size; "
        "otherwise the 512x512 crop is returned. Outputs frames, the speech and the frame rate for "
        "Create Video or any video node. Every frame stays in memory: for long clips use Render Video, which "
        "streams into an mp4."
    )
    CATEGORY = "JoyVASA/render"
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "AUDIO", "FLOAT")
    RETURN_NAMES = ("frames", "audio", "fps")
    OUTPUT_TOOLTIPS = ("Video frames (N, H, W, 3).", "The speech to play with them (silence of the video's length "
                       "when no audio is connected).", "Frames per second (25).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": dict(RENDER_INPUTS),
            "optional": {
                "face": FACE_INPUT,
                "audio": ("AUDIO", {"tooltip": "The original speech, passed through to the audio output."}),
            },
        }

    def render(self, liveportrait, appearance, keypoints, paste_back, batch_size, image_index, face=None, audio=None):
        with node_errors(DISPLAY):
            frames = warp_and_render(on_device(liveportrait), appearance, keypoints, face, paste_back, batch_size,
                                     ComfyProgress(), image_index)
            fps = float(keypoints.fps)
            if audio is None:
                waveform, sample_rate = silent_audio(keypoints.n_frames, fps)
                audio = {"waveform": waveform, "sample_rate": sample_rate}
            return (frames, audio, fps)
