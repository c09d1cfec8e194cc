"""Motion from a driving video's frames (joyvasa_core.pipeline.motion_from_video)."""

from __future__ import annotations

from ..joyvasa_core.pipeline import motion_from_video
from ..joyvasa_core.validate import bounds
from .memory import on_device
from .progress import ComfyProgress
from .schema import FaceDetector, JoyVASANode, LivePortrait, Motion, io


class JoyVASAMotionFromVideo(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            LivePortrait.Input("liveportrait", tooltip="Its motion extractor reads the frames."),
            io.Image.Input("images", tooltip="The driving video's frames (e.g. Get Video Components)."),
            io.Float.Input("fps", default=25.0, min=1.0, max=240.0, step=1.0, tooltip="The video's frame rate "
                           "(rounded to whole frames per second)."),
            io.Boolean.Input("crop", default=True, tooltip="Crop around the face (off: the frames already show just "
                             "the face, resized to 256)."),
            io.Int.Input("batch_size", default=16, **bounds("batch_size"), tooltip="Frames per motion-extractor pass."),
            FaceDetector.Input("face_detector", optional=True, tooltip="Default: the bundled one."),
        ], outputs=[Motion.Output(display_name="motion", tooltip="One motion frame per video frame.")])

    @classmethod
    def execute(cls, liveportrait, images, fps, crop, batch_size, face_detector=None) -> io.NodeOutput:
        with cls.errors():
            models = on_device(liveportrait)
            return io.NodeOutput(motion_from_video(models, images, face_detector, fps=fps, crop=crop,
                                                   batch_size=batch_size, progress=ComfyProgress()))
