"""Add blinks to a motion and set how open the eyes are (joyvasa_core.motion.blinks)."""

from __future__ import annotations

from ..joyvasa_core.motion.blinks import BLINK_MODES, BlinkOptions, apply_blinks
from ..joyvasa_core.validate import bounds
from .schema import JoyVASANode, Motion, io


class JoyVASAAddBlinks(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            Motion.Input("motion", tooltip="The motion to add blinks to."),
            io.Combo.Input("mode", options=list(BLINK_MODES), default="if_none", tooltip="off: openness only; on: add "
                           "blinks; if_none: add them when the eye keypoints show none."),
            io.Float.Input("rate", default=15.0, **bounds("blink_rate"), step=0.5,
                           tooltip="Blinks per minute on average "
                           "(people: 15-20)."),
            io.Float.Input("duration", default=0.25, **bounds("blink_duration"), step=0.01,
                           tooltip="Seconds from open to "
                           "closed to open."),
            io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, tooltip="Same seed, same blinks."),
            io.Float.Input("openness", default=1.0, **bounds("openness"), step=0.05, tooltip="Eye opening between "
                           "blinks: 1 = the portrait's own."),
        ], outputs=[Motion.Output(display_name="motion", tooltip="The motion with its eye-openness track.")])

    @classmethod
    def execute(cls, motion, mode, rate, duration, seed, openness) -> io.NodeOutput:
        with cls.errors():
            options = BlinkOptions(mode=mode, rate=rate, duration=duration, seed=seed, openness=openness)
            return io.NodeOutput(apply_blinks(motion, options))
