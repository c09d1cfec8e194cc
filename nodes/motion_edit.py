"""Mix, edit, fit and crossfade motions (joyvasa_core.motion.edit states every rule; these only map widgets)."""

from __future__ import annotations

from ..joyvasa_core.motion.edit import FIT_MODES, crossfade, mix, offset_pose, scale_parts
from ..joyvasa_core.pipeline import fit_motion
from ..joyvasa_core.validate import bounds
from .schema import JoyVASANode, Motion, io

FIT_TIP = ("How a shorter head/lips motion fills the expression motion's length: loop, pingpong (back and forth) or "
           "hold its last frame; a longer one is cut.")


def _multiplier(name: str, tip: str) -> io.Float.Input:
    return io.Float.Input(name, default=1.0, **bounds("multiplier"), step=0.05, tooltip=tip)


def _degrees(name: str, tip: str) -> io.Float.Input:
    return io.Float.Input(name, default=0.0, **bounds("pose_offset"), step=0.5, tooltip=tip)


class JoyVASAMixMotion(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            Motion.Input("expression", tooltip="Gives the expression, the eyes, the length and fps."),
            io.Combo.Input("fit", options=list(FIT_MODES), default="loop", tooltip=FIT_TIP),
            Motion.Input("head", optional=True, tooltip="Gives head rotation, translation and scale."),
            Motion.Input("lips", optional=True, tooltip="Gives the lip keypoints of the expression."),
        ], outputs=[Motion.Output(display_name="motion", tooltip="The mixed motion.")])

    @classmethod
    def execute(cls, expression, fit, head=None, lips=None) -> io.NodeOutput:
        with cls.errors():
            return io.NodeOutput(mix(expression, head=head, lips=lips, fit=fit))


class JoyVASAEditMotion(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            Motion.Input("motion", tooltip="The motion to edit."),
            _multiplier("head_rotation", "Head turning and nodding."),
            _multiplier("translation", "Head sliding in the picture."),
            _multiplier("scale", "Head moving closer and away."),
            _multiplier("expression", "The whole expression (lips included)."),
            _multiplier("lips", "The lips only, on top of expression."),
            _degrees("pitch", "Constant nod, degrees (positive = chin down)."),
            _degrees("yaw", "Constant turn, degrees."),
            _degrees("roll", "Constant tilt, degrees."),
        ], outputs=[Motion.Output(display_name="motion", tooltip="The edited motion.")])

    @classmethod
    def execute(cls, motion, head_rotation, translation, scale, expression, lips, pitch, yaw, roll) -> io.NodeOutput:
        with cls.errors():
            out = scale_parts(motion, rotation=head_rotation, translation=translation, scale=scale,
                              expression=expression, lips=lips)
            return io.NodeOutput(offset_pose(out, pitch=pitch, yaw=yaw, roll=roll))


class JoyVASAFitMotion(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            Motion.Input("motion", tooltip="The motion to trim and fit."),
            io.Int.Input("start", default=0, **bounds("length"), tooltip="First frame kept."),
            io.Int.Input("stop", default=0, **bounds("length"), tooltip="Frame after the last kept (0 = to the "
                         "end)."),
            io.Int.Input("length", default=0, **bounds("length"), tooltip="Frames out (0 = the trimmed length)."),
            io.Combo.Input("mode", options=list(FIT_MODES), default="loop", tooltip="How to reach a longer length."),
        ], outputs=[Motion.Output(display_name="motion", tooltip="The trimmed and fitted motion.")])

    @classmethod
    def execute(cls, motion, start, stop, length, mode) -> io.NodeOutput:
        with cls.errors():
            return io.NodeOutput(fit_motion(motion, start, stop, length, mode))


class JoyVASACrossfadeMotion(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            Motion.Input("first", tooltip="Plays first; its lips rule how the result is composed."),
            Motion.Input("second", tooltip="Plays after the overlap."),
            io.Int.Input("frames", default=12, **bounds("length"), tooltip="Overlap in frames (0 = a cut)."),
        ], outputs=[Motion.Output(display_name="motion", tooltip="first + second minus the overlap, in frames.")])

    @classmethod
    def execute(cls, first, second, frames) -> io.NodeOutput:
        with cls.errors():
            return io.NodeOutput(crossfade(first, second, frames))
