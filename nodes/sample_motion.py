"""SampleMotionDiffusion: speech -> head motion and expressions (JoyVASA's audio-conditioned diffusion)."""

from __future__ import annotations

from ..joyvasa_core.motion.sampler import CLI_CFG_SCALE, SCHEDULERS, WEB_CFG_SCALE, SamplingOptions, steps_control
from ..joyvasa_core.motion.smoothing import DEFAULT_EMA_ALPHA, SMOOTHING_METHODS
from ..joyvasa_core.pipeline import prepare_speech, sample_motion
from ..joyvasa_core.validate import bounds, validate_inputs
from .memory import on_device
from .progress import ComfyProgress
from .schema import AudioFeatures, JoyVASANode, Motion, MotionModel, io, shown_when


class _SampleMotion(JoyVASANode):
    """The sampling node under both of its type names (the class below each, registered one by one)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            MotionModel.Input("motion_model"),
            AudioFeatures.Input("audio_features"),
            io.Int.Input("seed", default=0, **bounds("seed"), control_after_generate=True,
                         tooltip="Another seed gives another performance of the same speech: other head moves and "
                         "expressions, the lips in sync either way."),
            io.Float.Input("cfg_scale", default=WEB_CFG_SCALE, **bounds("cfg_scale"), step=0.1, round=0.01,
                           tooltip="How closely the mouth follows the speech: higher gives crisper, wider lip shapes, "
                           f"lower calmer ones ({WEB_CFG_SCALE} as the web demo, {CLI_CFG_SCALE} as the command "
                           "line)."),
            io.Combo.Input("sampler", options=list(SCHEDULERS), default="ddpm", tooltip="ddpm: every denoising "
                           "step, the reference's result; ddim: only 'steps' of them, faster, the lips a little less "
                           "precise."),
            shown_when(io.Int.Input("steps", default=50, **bounds("steps"), tooltip="How many denoising steps ddim "
                                    "takes: fewer is faster, the lips less precise (at most the model's, 50 for the "
                                    "released one). Shown only for ddim: ddpm always takes all of them."),
                       {"sampler": [s for s in SCHEDULERS if steps_control(s, 1) is not None]}),
            io.Combo.Input("smoothing", options=list(SMOOTHING_METHODS), default="ema", tooltip="Head-pose smoothing "
                           "(the reference uses an EMA)."),
            io.Float.Input("smoothing_alpha", default=DEFAULT_EMA_ALPHA, **bounds("smoothing_alpha"), step=0.001,
                           tooltip="EMA weight of the new frame (smaller = smoother)."),
            io.Boolean.Input("leading_silence", default=True, tooltip="Pad 80 ms of silence before the speech (the "
                             "reference) so the first syllable gets a mouth opening."),
            io.Boolean.Input("lag_compensation", default=True, tooltip="Drop the frames of the leading silence so the "
                             "lips move with the sound (frame k = speech at k/25 s, round(seconds x 25) frames). Off = "
                             "the reference's timing: 2 silent frames first, lips 80 ms late."),
        ], outputs=[Motion.Output(display_name="motion", tooltip="The motion sequence (reusable on any face; save it "
                                  "with Save Motion).")])

    @classmethod
    def validate_inputs(cls, cfg_scale):
        """cfg_scale's range and finiteness (ComfyUI's own min/max check lets NaN through, and this hook switches it
        off for cfg_scale). Only cfg_scale is taken, so a bad value is reported under its own widget; the other
        numbers get ComfyUI's check with the same table's bounds."""
        return validate_inputs({"cfg_scale": cfg_scale})

    @classmethod
    def execute(cls, motion_model, audio_features, seed, cfg_scale, sampler, steps, smoothing, smoothing_alpha,
                leading_silence, lag_compensation) -> io.NodeOutput:
        with cls.errors():
            motion_model = on_device(motion_model)
            # Reuses Encode Audio's HuBERT features when they were made by this model with this padding, else
            # encodes the windows here once.
            features = prepare_speech(audio_features, motion_model, leading_silence=leading_silence,
                                      progress=ComfyProgress())
            options = SamplingOptions(
                cfg_scale=cfg_scale, scheduler=sampler, num_steps=steps_control(sampler, steps), seed=seed,
                leading_silence=leading_silence, lag_compensation=lag_compensation, smoothing=smoothing,
                smoothing_alpha=smoothing_alpha,
            )
            return io.NodeOutput(sample_motion(motion_model, features, options, ComfyProgress()))


class JoyVASASampleMotionDiffusion(_SampleMotion):
    """The design card's name."""


class JoyVASASampleMotion(_SampleMotion):
    """The node's type name before it took the design card's: kept, hidden from the menu, so saved workflows load."""
