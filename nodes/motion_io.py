"""Save / load a JOYVASA_MOTION: identity-free motion, so one sampled performance drives any face later."""

from __future__ import annotations

import hashlib
import os

import folder_paths

from ..joyvasa_core.motion.sequence import MotionSequence
from .errors import NodeError, node_errors
from .folders import MOTION_FILE_EXTS, inside, list_user_files, user_file

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
                "filename_prefix": ("STRING", {"default": "joyvasa/motion", "tooltip": "Path under output/; a "
                                    "counter is appended."}),
            }
        }

    def save(self, motion, filename_prefix):
        with node_errors("JoyVASA Save Motion"):
            out_dir = folder_paths.get_output_directory()
            if os.path.isabs(filename_prefix) or not inside(os.path.join(out_dir, filename_prefix), out_dir):
                raise NodeError(f"filename_prefix {filename_prefix!r} points outside output/; use a relative path "
                                "such as joyvasa/motion.")
            folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, out_dir)
            filename = f"{name}_{counter:05}_{SUFFIX}"
            final = os.path.join(folder, filename)
            partial = final + ".part"
            try:
                motion.save(partial)
                os.replace(partial, final)  # never leave a half-written file under the final name
            finally:
                if os.path.exists(partial):
                    os.remove(partial)
            entry = {"filename": filename, "subfolder": subfolder, "type": "output"}
            return {"ui": {"motion": [entry], "text": [f"{filename}: {motion!r}"]}, "result": ()}


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
        try:
            path = user_file(motion_file)
        except FileNotFoundError as err:
            return str(err)
        return True if os.path.isfile(path) else f"motion file {motion_file!r} not found"

    @classmethod
    def IS_CHANGED(cls, motion_file):
        path = user_file(motion_file)
        st = os.stat(path)
        return hashlib.sha256(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()

    def load(self, motion_file):
        with node_errors("JoyVASA Load Motion"):
            return (MotionSequence.load(user_file(motion_file)),)
