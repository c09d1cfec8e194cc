"""EncodeAudio: ComfyUI AUDIO -> 16 kHz mono speech cut into the motion generator's windows."""

from __future__ import annotations

import logging

from ..joyvasa_core.pipeline import prepare_speech
from ..joyvasa_core.validate import NODE, speech_notes
from .memory import on_device
from .progress import ComfyProgress
from .schema import AudioFeatures, JoyVASANode, MotionModel, io

log = logging.getLogger(__name__)


class JoyVASAEncodeAudio(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            io.Audio.Input("audio", tooltip="Speech (any rate, mono or stereo)."),
            MotionModel.Input("motion_model", optional=True),
        ], outputs=[AudioFeatures.Output(display_name="audio_features", tooltip="16 kHz speech with its window plan "
                                         "(frame count at 25 fps).")])

    @classmethod
    def execute(cls, audio, motion_model=None) -> io.NodeOutput:
        with cls.errors():
            features = prepare_speech(audio, on_device(motion_model), progress=ComfyProgress())
            for note in speech_notes(features.duration, NODE):
                log.info("%s: note: %s", cls.display(), note)
            return io.NodeOutput(features)
