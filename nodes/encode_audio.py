"""EncodeAudio: ComfyUI AUDIO -> 16 kHz mono speech cut into the motion generator's windows."""

from __future__ import annotations

import logging

from ..joyvasa_core.pipeline import prepare_speech
from ..joyvasa_core.validate import NODE, speech_notes
from .errors import node_errors
from .memory import on_device
from .progress import ComfyProgress

DISPLAY = "JoyVASA Encode Audio"
log = logging.getLogger(__name__)


class JoyVASAEncodeAudio:
    DESCRIPTION = ("Downmixes and resamples the speech to 16 kHz mono, plans the diffusion windows (the video length "
                   "is known before sampling) and, with the motion model connected, runs its HuBERT encoder once, so "
                   "re-sampling with another seed or cfg skips it.")
    CATEGORY = "JoyVASA/audio"
    FUNCTION = "encode"
    RETURN_TYPES = ("JOYVASA_AUDIO_FEATURES",)
    RETURN_NAMES = ("audio_features",)
    OUTPUT_TOOLTIPS = ("16 kHz speech with its window plan (frame count at 25 fps).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"audio": ("AUDIO", {"tooltip": "Speech (any rate, mono or stereo)."})},
            "optional": {"motion_model": ("JOYVASA_MOTION_MODEL",)},
        }

    def encode(self, audio, motion_model=None):
        with node_errors(DISPLAY):
            features = prepare_speech(audio, on_device(motion_model), progress=ComfyProgress())
            for note in speech_notes(features.duration, NODE):
                log.info("%s: note: %s", DISPLAY, note)
            return (features,)
