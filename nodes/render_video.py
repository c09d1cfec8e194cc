"""RenderVideo: the driving keypoints -> an H.264 + AAC mp4, streamed chunk by chunk (flat memory for any length)."""

from __future__ import annotations

from comfy_api.input_impl import VideoFromFile

from ..joyvasa_core.audio.io import load_audio
from ..joyvasa_core.pipeline import estimate_render_bytes, paste_back_into_photo, render_video
from ..joyvasa_core.validate import bounds
from .errors import node_errors
from .folders import output_file
from .memory import on_device
from .progress import ComfyProgress
from .warp_and_render import FACE_INPUT, RENDER_INPUTS

DISPLAY = "JoyVASA Render Video"
FORMATS = ["mp4"]
DEFAULT_PREFIX = "JoyVASA/talking"


class JoyVASARenderVideo:
    DESCRIPTION = (
        "Renders the frames and encodes them into an mp4 (H.264, with the speech as AAC) as they come, a chunk at a "
        "time, so a clip of any length needs the memory of a few frames (Warp and Render holds them all). Pastes "
        "back into the photo like Warp and Render. Outputs a VIDEO for Save Video, Preview Video or Get Video "
        "Components, and the file's path."
    )
    CATEGORY = "JoyVASA/render"
    FUNCTION = "render"
    OUTPUT_NODE = True
    RETURN_TYPES = ("VIDEO", "STRING")
    RETURN_NAMES = ("video", "path")
    OUTPUT_TOOLTIPS = ("The rendered video (frames, speech, 25 fps).", "Where the mp4 was written.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                **RENDER_INPUTS,
                "filename_prefix": ("STRING", {"default": DEFAULT_PREFIX, "tooltip": "File name start, inside "
                                    "ComfyUI's output (or temp) folder; a counter and .mp4 are added."}),
                "format": (FORMATS, {"default": "mp4", "tooltip": "Container: mp4 with H.264 video and AAC audio."}),
                "crf": ("INT", {"default": 18, **bounds("crf"), "tooltip": "H.264 quality: lower is better and "
                        "bigger (18 = the reference's, visually lossless)."}),
                "save_output": ("BOOLEAN", {"default": True, "tooltip": "Keep the file in output/ (on) or write it "
                                "to temp/, emptied when ComfyUI restarts (off)."}),
            },
            "optional": {
                "face": FACE_INPUT,
                "audio": ("AUDIO", {"tooltip": "The speech for the sound track (none: a silent video)."}),
            },
        }

    def render(self, liveportrait, appearance, keypoints, paste_back, batch_size, image_index, filename_prefix,
               format, crf, save_output, face=None, audio=None):
        with node_errors(DISPLAY):
            models = on_device(liveportrait)
            pb = paste_back_into_photo(face, keypoints.options.stitching, paste_back, image_index, models.crop_size)
            wave = None if audio is None else load_audio(audio)
            path, saved = output_file(filename_prefix, f".{format}", DEFAULT_PREFIX,
                                      "output" if save_output else "temp",
                                      estimate_render_bytes(models, keypoints, pb, crf, wave))
            video = render_video(models, appearance, keypoints, path, pb, batch_size, wave, crf, ComfyProgress())
            return {"ui": {"images": [saved], "animated": (True,)},
                    "result": (VideoFromFile(str(video.path)), str(video.path))}
