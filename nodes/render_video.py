"""RenderVideo: the driving keypoints -> an H.264 + AAC mp4, streamed chunk by chunk (flat memory for any length)."""

from __future__ import annotations

import os

import folder_paths
from comfy_api.input_impl import VideoFromFile

from ..joyvasa_core.audio.io import load_audio
from ..joyvasa_core.pipeline import paste_back_into_photo, render_video
from .errors import NodeError, node_errors
from .folders import inside
from .memory import on_device
from .progress import ComfyProgress
from .warp_and_render import FACE_INPUT, RENDER_INPUTS

DISPLAY = "JoyVASA Render Video"
FORMATS = ["mp4"]


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
                "filename_prefix": ("STRING", {"default": "JoyVASA/talking", "tooltip": "File name start, inside "
                                    "ComfyUI's output (or temp) folder; a counter and .mp4 are added."}),
                "format": (FORMATS, {"default": "mp4", "tooltip": "Container: mp4 with H.264 video and AAC audio."}),
                "crf": ("INT", {"default": 18, "min": 0, "max": 51, "tooltip": "H.264 quality: lower is better and "
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
            kind = "output" if save_output else "temp"
            root = folder_paths.get_output_directory() if save_output else folder_paths.get_temp_directory()
            if os.path.isabs(filename_prefix) or not inside(os.path.join(root, filename_prefix), root):
                raise NodeError(f"filename_prefix {filename_prefix!r} points outside {kind}/; use a relative path "
                                "such as JoyVASA/talking.")
            folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, root)
            file = f"{name}_{counter:05}_.{format}"
            wave = None if audio is None else load_audio(audio)
            video = render_video(models, appearance, keypoints, os.path.join(folder, file), pb, batch_size, wave, crf,
                                 ComfyProgress())
            saved = {"filename": file, "subfolder": subfolder, "type": kind}
            return {"ui": {"images": [saved], "animated": (True,)},
                    "result": (VideoFromFile(str(video.path)), str(video.path))}
