"""Export / load LivePortrait driving templates (.pkl), the motion files LivePortrait and FasterLivePortrait use."""

from __future__ import annotations

from ..joyvasa_core.checkpoints.driving_template import read_driving_template, write_driving_template
from ..joyvasa_core.validate import estimate_motion_bytes
from .errors import node_errors
from .folders import TEMPLATE_EXTS, check_user_file, list_user_files, output_file, user_file, user_file_fingerprint


class JoyVASAExportDrivingTemplate:
    DESCRIPTION = ("Writes the motion as a LivePortrait driving template (.pkl) in output/: drive a face with it in "
                   "LivePortrait (-d motion.pkl) or FasterLivePortrait; it loads back here unchanged.")
    CATEGORY = "JoyVASA/motion"
    FUNCTION = "export"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "motion": ("JOYVASA_MOTION", {"tooltip": "The motion to export."}),
                "filename_prefix": ("STRING", {"default": "JoyVASA/driving", "tooltip": "Path under output/; a "
                                    "counter is appended."}),
            }
        }

    def export(self, motion, filename_prefix):
        with node_errors("JoyVASA Export Driving Template"):
            path, entry = output_file(filename_prefix, ".pkl", "JoyVASA/driving",
                                      needed=estimate_motion_bytes(motion.n_frames, template=True))
            write_driving_template(motion, path)  # complete under its name or not at all
            return {"ui": {"motion": [entry], "text": [f"{entry['filename']}: {motion!r}"]}, "result": ()}


class JoyVASALoadDrivingTemplate:
    DESCRIPTION = ("Loads a LivePortrait / FasterLivePortrait driving template (.pkl) from input/ (or output/) as a "
                   "motion. Only numpy arrays and plain containers are unpickled: a file that tries to run code is "
                   "refused.")
    CATEGORY = "JoyVASA/motion"
    FUNCTION = "load"
    RETURN_TYPES = ("JOYVASA_MOTION",)
    RETURN_NAMES = ("motion",)
    OUTPUT_TOOLTIPS = ("The template's motion.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"template_file": (list_user_files(TEMPLATE_EXTS), {"tooltip": "A .pkl in input/ "
                                                                                "or output/."})}}

    @classmethod
    def VALIDATE_INPUTS(cls, template_file):
        return check_user_file(template_file, "driving template")

    @classmethod
    def IS_CHANGED(cls, template_file):
        return user_file_fingerprint(template_file)

    def load(self, template_file):
        with node_errors("JoyVASA Load Driving Template"):
            return (read_driving_template(user_file(template_file)),)
