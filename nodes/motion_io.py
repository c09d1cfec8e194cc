"""Save / load a JOYVASA_MOTION: identity-free motion, so one sampled performance drives any face later."""

from __future__ import annotations

from ..joyvasa_core.checkpoints.motion_sequence import read_motion_sequence, write_motion_sequence
from .errors import node_errors
from .folders import MOTION_FILE_EXTS, check_user_file, list_user_files, output_file, user_file, user_file_fingerprint

SUFFIX = ".safetensors"


class JoyVASASaveMotion:
    DESCRIPTION = ("Saves the motion as a safetensors file in output/ (frames, fps, seed and sampler settings). Copy "
                   "it to input/ or pick it with its [output] name in Load Motion to reuse it on another face.")
    CATEGORY = "JoyVASA/motion"
    FUNCTION = "save"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "motion": ("JOYVASA_MOTION",),
                "filename_prefix": ("STRING", {"default": "JoyVASA/motion", "tooltip": "Path under output/; a "
                                    "counter is appended."}),
            }
        }

    def save(self, motion, filename_prefix):
        with node_errors("JoyVASA Save Motion"):
            final, entry = output_file(filename_prefix, SUFFIX, "JoyVASA/motion", needed=motion.nbytes)
            write_motion_sequence(motion, final)
            return {"ui": {"motion": [entry], "text": [f"{entry['filename']}: {motion!r}"]}, "result": ()}


class JoyVASALoadMotion:
    DESCRIPTION = "Loads a motion saved by Save Motion from input/ (or output/, the names ending in [output])."
    CATEGORY = "JoyVASA/motion"
    FUNCTION = "load"
    RETURN_TYPES = ("JOYVASA_MOTION",)
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("The saved motion sequence.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"motion_file": (list_user_files(MOTION_FILE_EXTS),)}}

    @classmethod
    def VALIDATE_INPUTS(cls, motion_file):
        return check_user_file(motion_file, "motion file")

    @classmethod
    def IS_CHANGED(cls, motion_file):
        return user_file_fingerprint(motion_file)

    def load(self, motion_file):
        with node_errors("JoyVASA Load Motion"):
            return (read_motion_sequence(user_file(motion_file)),)
