"""Node registry: each module here is one stage's thin adapter over joyvasa_core, on ComfyUI's V3 node API
(``schema.py`` pins its version; ``catalog.py`` names them)."""

from __future__ import annotations

from .compute_target_keypoints import JoyVASAComputeTargetKeypoints
from .driving_template import JoyVASAExportDrivingTemplate, JoyVASALoadDrivingTemplate
from .encode_audio import JoyVASAEncodeAudio
from .extract_appearance import JoyVASAExtractAppearance
from .folders import register_model_folders
from .live import JoyVASALive
from .load_reference_face import JoyVASALoadReferenceFace
from .loaders import JoyVASAFaceDetectorLoader, JoyVASALivePortraitLoader, JoyVASAMotionModelLoader
from .motion_blinks import JoyVASAAddBlinks
from .motion_edit import JoyVASACrossfadeMotion, JoyVASAEditMotion, JoyVASAFitMotion, JoyVASAMixMotion
from .motion_from_video import JoyVASAMotionFromVideo
from .motion_io import JoyVASALoadMotion, JoyVASASaveMotion
from .motion_preview import JoyVASAMotionPreview
from .render_video import JoyVASARenderVideo
from .sample_motion import JoyVASASampleMotion, JoyVASASampleMotionDiffusion
from .schema import ComfyExtension, JoyVASANode
from .warp_and_render import JoyVASAWarpAndRender

register_model_folders()

# menu order; the last one is the hidden old type name (saved workflows still load)
NODES: tuple[type[JoyVASANode], ...] = (
    JoyVASALivePortraitLoader, JoyVASAMotionModelLoader, JoyVASAFaceDetectorLoader, JoyVASALoadReferenceFace,
    JoyVASAExtractAppearance, JoyVASAEncodeAudio, JoyVASASampleMotionDiffusion, JoyVASAComputeTargetKeypoints,
    JoyVASAWarpAndRender, JoyVASARenderVideo, JoyVASASaveMotion, JoyVASALoadMotion, JoyVASAMotionFromVideo,
    JoyVASAMixMotion, JoyVASAEditMotion, JoyVASAFitMotion, JoyVASACrossfadeMotion, JoyVASAAddBlinks,
    JoyVASAMotionPreview, JoyVASAExportDrivingTemplate, JoyVASALoadDrivingTemplate, JoyVASALive, JoyVASASampleMotion,
)


class JoyVASAExtension(ComfyExtension):
    """What ComfyUI asks a V3 pack for: its node classes."""

    async def get_node_list(self) -> list[type[JoyVASANode]]:
        return list(NODES)


async def comfy_entrypoint() -> JoyVASAExtension:
    return JoyVASAExtension()
