"""RenderVideo: the driving keypoints -> an H.264 + AAC mp4, streamed chunk by chunk (flat memory for any length)."""

from __future__ import annotations

from ..joyvasa_core.audio.io import load_audio
from ..joyvasa_core.pipeline import estimate_render_bytes, paste_back_into_photo, render_video
from ..joyvasa_core.validate import bounds
from .folders import output_file
from .memory import on_device
from .progress import ComfyProgress
from .schema import InputImpl, JoyVASANode, io
from .warp_and_render import face_input, render_inputs

FORMATS = ["mp4"]
DEFAULT_PREFIX = "JoyVASA/talking"


class JoyVASARenderVideo(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            *render_inputs(),
            io.String.Input("filename_prefix", default=DEFAULT_PREFIX, tooltip="File name start, inside ComfyUI's "
                            "output (or temp) folder; a counter and .mp4 are added."),
            io.Combo.Input("format", options=FORMATS, default="mp4", tooltip="Container: mp4 with H.264 video and AAC "
                           "audio."),
            io.Int.Input("crf", default=18, **bounds("crf"), tooltip="H.264 quality: lower is better and bigger (18 = "
                         "the reference's, visually lossless)."),
            io.Boolean.Input("save_output", default=True, tooltip="Keep the file in output/ (on) or write it to temp/, "
                             "emptied when ComfyUI restarts (off)."),
            face_input(),
            io.Audio.Input("audio", optional=True, tooltip="The speech for the sound track (none: a silent video)."),
        ], outputs=[
            io.Video.Output(display_name="video", tooltip="The rendered video (frames, speech, 25 fps)."),
            io.String.Output(display_name="path", tooltip="Where the mp4 was written."),
        ], is_output_node=True)

    @classmethod
    def execute(cls, liveportrait, appearance, keypoints, paste_back, batch_size, image_index, filename_prefix,
                format, crf, save_output, face=None, audio=None) -> io.NodeOutput:
        with cls.errors():
            models = on_device(liveportrait)
            pb = paste_back_into_photo(face, keypoints.options.stitching, paste_back, image_index, models.crop_size)
            wave = None if audio is None else load_audio(audio)
            path, saved = output_file(filename_prefix, f".{format}", DEFAULT_PREFIX,
                                      "output" if save_output else "temp",
                                      estimate_render_bytes(models, keypoints, pb, crf, wave))
            video = render_video(models, appearance, keypoints, path, pb, batch_size, wave, crf, ComfyProgress())
            return io.NodeOutput(InputImpl.VideoFromFile(str(video.path)), str(video.path),
                                 ui={"images": [saved], "animated": (True,)})
