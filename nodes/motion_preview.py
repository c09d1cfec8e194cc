"""Draw a motion over time as an IMAGE (joyvasa_core.motion.preview)."""

from __future__ import annotations

from ..joyvasa_core.motion.preview import motion_preview_image
from .schema import JoyVASANode, Motion, io


class JoyVASAMotionPreview(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            Motion.Input("motion", tooltip="The motion to draw."),
            io.Int.Input("width", default=1024, min=320, max=8192, step=16, tooltip="Image width in pixels (the height "
                         "follows the panels)."),
            io.Float.Input("audio_delay", default=0.0, min=0.0, max=10.0, step=0.01, tooltip="Where the speech starts, "
                           "in seconds after frame 0 (0 with lag compensation, the default; 0.08 for the reference's "
                           "timing)."),
            io.Audio.Input("audio", optional=True, tooltip="The speech, drawn under the curves."),
        ], outputs=[io.Image.Output(display_name="plot", tooltip="The plot, one image.")])

    @classmethod
    def execute(cls, motion, width, audio_delay, audio=None) -> io.NodeOutput:
        with cls.errors():
            wave = rate = None
            if audio is not None:
                wave, rate = audio["waveform"][0], int(audio["sample_rate"])
            return io.NodeOutput(motion_preview_image(motion, wave, rate, width=width, audio_delay=audio_delay))
