"""WarpAndRender: the driving keypoints -> video frames (warping W + generator G, then paste-back into the photo)."""

from __future__ import annotations

from ..joyvasa_core.pipeline import silent_audio, warp_and_render
from ..joyvasa_core.validate import bounds
from .memory import on_device
from .progress import ComfyProgress
from .schema import Appearance, Face, JoyVASANode, Keypoints, LivePortrait, io


def render_inputs() -> list[io.Input]:
    """The inputs both render nodes take (Render Video adds its file options)."""
    return [
        LivePortrait.Input("liveportrait"),
        Appearance.Input("appearance"),
        Keypoints.Input("keypoints"),
        io.Boolean.Input("paste_back", default=True, tooltip="Frames at the photo's size: the "
                     "animated face put back into the photo (needs stitching), or a whole-image crop's picture; "
                     "off: the 512x512 crop."),
        io.Int.Input("batch_size", default=1, **bounds("batch_size"),
                     tooltip="Frames per network pass: 1 is fastest on a "
                     "CPU, 8 or more on a GPU (more memory)."),
        io.Int.Input("image_index", default=0, min=0, max=4095, tooltip="The reference image to paste into (the one "
                     "given to Extract Appearance)."),
    ]


def face_input() -> io.Input:
    return Face.Input("face", optional=True, tooltip="The reference face, needed for paste-back.")


class JoyVASAWarpAndRender(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            *render_inputs(),
            face_input(),
            io.Audio.Input("audio", optional=True, tooltip="The original speech, passed through to the audio output."),
        ], outputs=[
            io.Image.Output(display_name="frames", tooltip="Video frames (N, H, W, 3)."),
            io.Audio.Output(display_name="audio", tooltip="The speech to play with them (silence of the video's length "
                            "when no audio is connected)."),
            io.Float.Output(display_name="fps", tooltip="Frames per second (25)."),
        ])

    @classmethod
    def execute(cls, liveportrait, appearance, keypoints, paste_back, batch_size, image_index, face=None,
                audio=None) -> io.NodeOutput:
        with cls.errors():
            frames = warp_and_render(on_device(liveportrait), appearance, keypoints, face, paste_back, batch_size,
                                     ComfyProgress(), image_index)
            fps = float(keypoints.fps)
            if audio is None:
                waveform, sample_rate = silent_audio(keypoints.n_frames, fps)
                audio = {"waveform": waveform, "sample_rate": sample_rate}
            return io.NodeOutput(frames, audio, fps)
