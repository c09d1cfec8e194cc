"""Save / load a JOYVASA_MOTION: identity-free motion, so one sampled performance drives any face later."""

from __future__ import annotations

from ..joyvasa_core.checkpoints.motion_sequence import read_motion_sequence, write_motion_sequence
from .folders import MOTION_FILE_EXTS, check_user_file, list_user_files, output_file, user_file, user_file_fingerprint
from .schema import JoyVASANode, Motion, io

SUFFIX = ".safetensors"


class JoyVASASaveMotion(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            Motion.Input("motion"),
            io.String.Input("filename_prefix", default="JoyVASA/motion", tooltip="Path under output/; a counter is "
                            "appended."),
        ], is_output_node=True)

    @classmethod
    def execute(cls, motion, filename_prefix) -> io.NodeOutput:
        with cls.errors():
            final, entry = output_file(filename_prefix, SUFFIX, "JoyVASA/motion", needed=motion.nbytes)
            write_motion_sequence(motion, final)
            return io.NodeOutput(ui={"motion": [entry], "text": [f"{entry['filename']}: {motion!r}"]})


class JoyVASALoadMotion(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[io.Combo.Input("motion_file", options=list_user_files(MOTION_FILE_EXTS))],
                          outputs=[Motion.Output(display_name="motion", tooltip="The saved motion sequence.")])

    @classmethod
    def validate_inputs(cls, motion_file):
        return check_user_file(motion_file, "motion file")

    @classmethod
    def fingerprint_inputs(cls, motion_file):
        return user_file_fingerprint(motion_file)

    @classmethod
    def execute(cls, motion_file) -> io.NodeOutput:
        with cls.errors():
            return io.NodeOutput(read_motion_sequence(user_file(motion_file)))
