"""LoadReferenceFace: the portrait (IMAGE, optional MASK) -> the face crop(s) the networks see."""

from __future__ import annotations

import logging

from ..joyvasa_core.face.reference import CROP_MODES, ReferenceOptions, loader_mask
from ..joyvasa_core.face.select import FACE_ORDERS
from ..joyvasa_core.pipeline import crop_previews, load_reference_face, reference_box
from ..joyvasa_core.validate import bounds
from .schema import Face, FaceDetector, JoyVASANode, io, shown_when

log = logging.getLogger(__name__)
CROPS = list(CROP_MODES)
ALPHA = ["drop", "white", "black"]


def _box_input(name: str, tip: str) -> io.Int.Input:
    """A box_* widget: it means something only for crop = box."""
    return shown_when(io.Int.Input(name, optional=True, default=0, **bounds("box_side"),
                                   tooltip=tip), {"crop": ["box"]})


class JoyVASALoadReferenceFace(JoyVASANode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return cls.schema(inputs=[
            io.Image.Input("image", tooltip="The portrait (a batch gives one face per image)."),
            io.Combo.Input("mode", options=["human", "animal"], default="human"),
            io.Combo.Input("crop", options=CROPS, default="auto", tooltip="What the networks see: auto, the detected "
                           "face, a box, a mask's box, the whole picture undistorted (whole) or squeezed to a square "
                           "like the reference (squeeze)."),
            io.Int.Input("face_index", default=0, **bounds("face_index"),
                         tooltip="Which face, in face_order, when the photo "
                         "holds several."),
            io.Combo.Input("face_order", options=list(FACE_ORDERS), default="largest"),
            io.Float.Input("scale", default=2.3, min=1.0, max=4.0, step=0.05, tooltip="Crop size relative to the "
                           "detected face (larger shows more hair and shoulders)."),
            io.Float.Input("vx_ratio", default=0.0, min=-1.0, max=1.0, step=0.005, tooltip="Horizontal shift of the "
                           "crop, in crop sizes."),
            io.Float.Input("vy_ratio", default=-0.125, min=-1.0, max=1.0, step=0.005, tooltip="Vertical shift of the "
                           "crop, in crop sizes (negative = up)."),
            io.Combo.Input("alpha", options=ALPHA, default="drop", tooltip="RGBA input: drop the alpha (as LoadImage "
                           "does) or composite a cut-out over white/black."),
            _box_input("box_x", "crop box: left edge of the region to animate, in image pixels."),
            _box_input("box_y", "crop box: top edge of the region, in image pixels."),
            _box_input("box_w", "crop box: region width in pixels (head and some hair: the crop is the square around "
                       "it)."),
            _box_input("box_h", "crop box: region height in pixels."),
            FaceDetector.Input("face_detector", optional=True),
            io.Mask.Input("mask", optional=True, tooltip="Non-zero on the subject: crop to its box (crop auto or "
                          "mask)."),
        ], outputs=[
            Face.Output(display_name="face", tooltip="The prepared face(s): crops, crop<->image transforms, "
                        "landmarks, eye/lip openness."),
            io.Image.Output(display_name="crop_preview", tooltip="The 512x512 crop(s), to check the framing."),
        ])

    @classmethod
    def execute(cls, image, mode, crop, face_index, face_order, scale, vx_ratio, vy_ratio, alpha, box_x=0, box_y=0,
                box_w=0, box_h=0, face_detector=None, mask=None) -> io.NodeOutput:
        with cls.errors():
            box = reference_box(crop, box_x, box_y, box_w, box_h)
            options = ReferenceOptions(
                mode=mode, crop=crop, face_index=face_index, face_order=face_order, scale=scale,
                vx_ratio=vx_ratio, vy_ratio=vy_ratio, mask=loader_mask(mask, image, crop), alpha=alpha, box=box,
            )
            reference = load_reference_face(image, face_detector, options)
            for note in sorted({n for f in reference.faces for n in f.notes}):
                log.info("%s: note: %s", cls.display(), note)
            return io.NodeOutput(reference, crop_previews(reference))
