"""ExtractAppearance: LivePortrait's per-source work (F's feature volume, M's keypoints, W's source compression),
done once however many frames are rendered."""

from __future__ import annotations

from ..joyvasa_core.pipeline import extract_appearance
from .memory import on_device
from .schema import Appearance, Face, JoyVASANode, LivePortrait, io


class JoyVASAExtractAppearance(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            LivePortrait.Input("liveportrait"),
            Face.Input("face"),
            io.Int.Input("image_index", default=0, min=0, max=4095, tooltip="Which image of a batched reference to "
                         "animate (use the same index in Warp and Render)."),
        ], outputs=[Appearance.Output(display_name="appearance", tooltip="Feature volume, source keypoints and "
                                      "eye/lip openness of one face.")])

    @classmethod
    def execute(cls, liveportrait, face, image_index) -> io.NodeOutput:
        with cls.errors():
            return io.NodeOutput(extract_appearance(on_device(liveportrait), face, image_index))
