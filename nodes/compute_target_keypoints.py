"""ComputeTargetKeypoints: the motion applied to this face's keypoints (relative to the motion's first frame),
with stitching and lip normalisation, as the reference web demo or command line does."""

from __future__ import annotations

from ..joyvasa_core.keypoints import REGIONS
from ..joyvasa_core.pipeline import KEYPOINT_PRESETS, compute_target_keypoints, keypoint_options
from ..joyvasa_core.validate import bounds
from .memory import on_device
from .progress import ComfyProgress
from .schema import Appearance, JoyVASANode, Keypoints, LivePortrait, Motion, io

SWITCH = ["preset", "on", "off"]


def _switch(value: str) -> bool | None:
    return None if value == "preset" else value == "on"


class JoyVASAComputeTargetKeypoints(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            LivePortrait.Input("liveportrait"),
            Appearance.Input("appearance"),
            Motion.Input("motion"),
            io.Combo.Input("preset", options=list(KEYPOINT_PRESETS), default="auto"),
            io.Combo.Input("relative_motion", options=SWITCH, default="preset", tooltip="On: the speech moves "
                           "this face from its own expression, scaled to the size of its features, so it keeps its "
                           "look; off: every frame takes the sampled expression as it is (the command line's look, "
                           "stronger on faces unlike the average). preset: web on, cli off."),
            io.Combo.Input("stitching", options=SWITCH, default="preset", tooltip="Keep the shoulders still so the "
                           "face can be pasted back into the photo."),
            io.Combo.Input("lip_normalization", options=SWITCH, default="preset", tooltip="Close an open-mouthed "
                           "source first, so the speech opens it."),
            io.Float.Input("driving_multiplier", default=0.0, **bounds("driving_multiplier"), step=0.01,
                           tooltip="How strongly "
                           "the face moves: above 1 livelier lips and expressions, below 1 calmer. 0 keeps the "
                           "preset's (1.0 for web, 1.1 for cli)."),
            io.Combo.Input("animation_region", options=list(REGIONS), default="all", tooltip="all; exp = expression "
                           "without head rotation; pose = head motion, source expression; lip = lip rows only; eyes = "
                           "like pose (JoyVASA has no eye motion of its own)."),
        ], outputs=[Keypoints.Output(display_name="keypoints", tooltip="Driving keypoints x_d per frame, with the "
                                     "options used.")])

    @classmethod
    def execute(cls, liveportrait, appearance, motion, preset, relative_motion, stitching, lip_normalization,
                driving_multiplier, animation_region) -> io.NodeOutput:
        with cls.errors():
            options = keypoint_options(preset, appearance.mode, relative_adjustments=_switch(relative_motion),
                                       stitching=_switch(stitching), normalize_lip=_switch(lip_normalization),
                                       driving_multiplier=driving_multiplier, animation_region=animation_region)
            models = on_device(liveportrait)
            return io.NodeOutput(compute_target_keypoints(models, appearance, motion, options, ComfyProgress()))
