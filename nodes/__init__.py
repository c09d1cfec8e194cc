"""Node registry: each module here is one stage's thin adapter over joyvasa_core (V1 classic API; JoyVASA Live is
V3, which ComfyUI runs from the same table)."""

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
from .warp_and_render import JoyVASAWarpAndRender

register_model_folders()

_NODES = (
    (JoyVASALivePortraitLoader, "JoyVASA LivePortrait Loader"),
    (JoyVASAMotionModelLoader, "JoyVASA Motion Generator Loader"),
    (JoyVASAFaceDetectorLoader, "JoyVASA Face Detector Loader"),
    (JoyVASALoadReferenceFace, "JoyVASA Load Reference Face"),
    (JoyVASAExtractAppearance, "JoyVASA Extract Appearance"),
    (JoyVASAEncodeAudio, "JoyVASA Encode Audio"),
    (JoyVASASampleMotionDiffusion, "JoyVASA Sample Motion Diffusion"),
    (JoyVASAComputeTargetKeypoints, "JoyVASA Compute Target Keypoints"),
    (JoyVASAWarpAndRender, "JoyVASA Warp and Render"),
    (JoyVASARenderVideo, "JoyVASA Render Video"),
    (JoyVASASaveMotion, "JoyVASA Save Motion"),
    (JoyVASALoadMotion, "JoyVASA Load Motion"),
    (JoyVASAMotionFromVideo, "JoyVASA Motion From Video"),
    (JoyVASAMixMotion, "JoyVASA Mix Motion"),
    (JoyVASAEditMotion, "JoyVASA Edit Motion"),
    (JoyVASAFitMotion, "JoyVASA Fit Motion"),
    (JoyVASACrossfadeMotion, "JoyVASA Crossfade Motion"),
    (JoyVASAAddBlinks, "JoyVASA Add Blinks"),
    (JoyVASAMotionPreview, "JoyVASA Motion Preview"),
    (JoyVASAExportDrivingTemplate, "JoyVASA Export Driving Template"),
    (JoyVASALoadDrivingTemplate, "JoyVASA Load Driving Template"),
    (JoyVASALive, "JoyVASA Live"),
    (JoyVASASampleMotion, "JoyVASA Sample Motion (old name)"),  # hidden (DEPRECATED): saved workflows still load
)

NODE_CLASS_MAPPINGS: dict[str, type] = {cls.__name__: cls for cls, _ in _NODES}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {cls.__name__: name for cls, name in _NODES}
