"""Export / load LivePortrait driving templates (.pkl), the motion files LivePortrait and FasterLivePortrait use."""

from __future__ import annotations

from ..joyvasa_core.checkpoints.driving_template import read_driving_template, write_driving_template
from ..joyvasa_core.validate import estimate_motion_bytes
from .folders import TEMPLATE_EXTS, check_user_file, list_user_files, output_file, user_file, user_file_fingerprint
from .schema import JoyVASANode, Motion, io


class JoyVASAExportDrivingTemplate(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            Motion.Input("motion", tooltip="The motion to export."),
            io.String.Input("filename_prefix", default="JoyVASA/driving", tooltip="Path under output/; a counter is "
                            "appended."),
        ], is_output_node=True)

    @classmethod
    def execute(cls, motion, filename_prefix) -> io.NodeOutput:
        with cls.errors():
            path, entry = output_file(filename_prefix, ".pkl", "JoyVASA/driving",
                                      needed=estimate_motion_bytes(motion.n_frames, template=True))
            write_driving_template(motion, path)  # complete under its name or not at all
            return io.NodeOutput(ui={"motion": [entry], "text": [f"{entry['filename']}: {motion!r}"]})


class JoyVASALoadDrivingTemplate(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[io.Combo.Input("template_file", options=list_user_files(TEMPLATE_EXTS),
                                                 tooltip="A .pkl in input/ or output/.")],
                          outputs=[Motion.Output(display_name="motion", tooltip="The template's motion.")])

    @classmethod
    def validate_inputs(cls, template_file):
        return check_user_file(template_file, "driving template")

    @classmethod
    def fingerprint_inputs(cls, template_file):
        return user_file_fingerprint(template_file)

    @classmethod
    def execute(cls, template_file) -> io.NodeOutput:
        with cls.errors():
            return io.NodeOutput(read_driving_template(user_file(template_file)))
