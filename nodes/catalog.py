"""The one table of the pack's nodes: type name (what saved workflows store), display name, menu category and the
description the UI shows on hover. ``nodes/__init__.py`` registers the classes; each schema reads its row here."""

from __future__ import annotations

from dataclasses import dataclass

from ..joyvasa_core.motion.sampler import CLI_CFG_SCALE, WEB_CFG_SCALE


@dataclass(frozen=True)
class NodeEntry:
    display_name: str
    category: str
    description: str
    hidden: bool = False  # deprecated: kept so saved workflows load, not offered in the menu


_SAMPLE_MOTION = ("Samples identity-free motion (expression, head pose, scale, translation at 25 fps) from the "
                  f"speech, window by window. cfg {WEB_CFG_SCALE} is the web demo's (livelier lips), {CLI_CFG_SCALE} "
                  "the reference command line's. ddpm runs every training step (the reference); ddim runs 'steps' of "
                  "them, faster.")

NODES: dict[str, NodeEntry] = {
    "JoyVASALivePortraitLoader": NodeEntry(
        "JoyVASA LivePortrait Loader", "JoyVASA/loaders",
        ("Loads LivePortrait's five networks (appearance F, motion M, warping W, generator G, stitching S) "
         "from models/liveportrait: the community safetensors (liveportrait/*.safetensors) or the official "
         "release (liveportrait/base_models/*.pth + retargeting_models/); animals from liveportrait/animal/ or"
         " liveportrait_animals/base_models_v1.1/. Missing files are downloaded on first use (human and animal"
         " v1.0: Kijai/LivePortrait_safetensors, into the folders ComfyUI-LivePortraitKJ uses; animal v1.1: "
         "KwaiVGI/LivePortrait). dtype is the compute precision of F/M/W/G (keypoint maths stays fp32).")),
    "JoyVASAMotionModelLoader": NodeEntry(
        "JoyVASA Motion Generator Loader", "JoyVASA/loaders",
        ("Loads the JoyVASA motion generator (motion_generator_hubert_chinese.pt, with its HuBERT audio "
         "encoder) and the motion template (motion_template.pkl) from models/joyvasa (the reference's "
         "JoyVASA/motion_generator + motion_template layout inside it works too). The two files are downloaded"
         " from jdh-algo/JoyVASA on first use.")),
    "JoyVASAFaceDetectorLoader": NodeEntry(
        "JoyVASA Face Detector Loader", "JoyVASA/loaders",
        ("A face detector for the reference image. bundled_* need no download (MediaPipe's BlazeFace + face "
         "mesh ported to PyTorch, shipped with the pack; short range for portraits, full range for smaller "
         "faces). official_insightface is LivePortrait's own (InsightFace det_10g.onnx + 2d106det.onnx in "
         "models/insightface/models/buffalo_l/, landmark.onnx in models/liveportrait/), listed when installed."
         " auto takes the official one when installed, else bundled short range, then full range if it finds "
         "no face.")),
    "JoyVASALoadReferenceFace": NodeEntry(
        "JoyVASA Load Reference Face", "JoyVASA/face",
        ("Finds the face in the portrait and crops it the way LivePortrait was trained (scale 2.3, shifted up,"
         " rotated upright). crop: auto = a connected non-empty mask's box, else the detected face for humans "
         "and the whole image for animals; face = the detected face; box = the box_x/box_y/box_w/box_h "
         "rectangle (e.g. one face of a group photo, or an animal's head); mask = the mask's box; whole = no "
         "crop, the whole picture undistorted in the square (edges extended); squeeze = the whole picture "
         "resized to the square (the reference's command line and animal mode). Without a detector the bundled "
         "short-range one is used, then the full-range one if it finds no face.")),
    "JoyVASAExtractAppearance": NodeEntry(
        "JoyVASA Extract Appearance", "JoyVASA/face",
        ("Runs the appearance and motion extractors on the face crop once: the identity the renderer warps, "
         "and the source keypoints the motion is applied to.")),
    "JoyVASAEncodeAudio": NodeEntry(
        "JoyVASA Encode Audio", "JoyVASA/audio",
        ("Downmixes and resamples the speech to 16 kHz mono, plans the diffusion windows (the video length is "
         "known before sampling) and, with the motion model connected, runs its HuBERT encoder once, so re-"
         "sampling with another seed or cfg skips it.")),
    "JoyVASASampleMotionDiffusion": NodeEntry(
        "JoyVASA Sample Motion Diffusion", "JoyVASA/motion",
        _SAMPLE_MOTION),
    "JoyVASAComputeTargetKeypoints": NodeEntry(
        "JoyVASA Compute Target Keypoints", "JoyVASA/motion",
        ("Turns the motion into the driving keypoints of every frame. Presets: web = the reference web demo "
         "(relative motion with the expression-friendly multiplier, stitching, lip normalisation; the "
         "published results), cli = the reference command line (none of those, multiplier 1.10), animal = the "
         "animal path (no stitching, source scale). auto = animal for an animal face, else web. The switches "
         "override single features of the preset.")),
    "JoyVASAWarpAndRender": NodeEntry(
        "JoyVASA Warp and Render", "JoyVASA/render",
        ("Renders every frame: warps the face's feature volume to the driving keypoints and decodes it, "
         "batch_size frames at a time, then pastes the face back into the full photo (needs the face input and"
         " stitching, as in the reference) or, for a whole-image crop (animals), takes the picture back out at "
         "the photo's size; otherwise the 512x512 crop is returned. Outputs frames, the speech and the frame "
         "rate for Create Video or any video node. Every frame stays in memory: for long clips "
         "use Render Video, which streams into an mp4.")),
    "JoyVASARenderVideo": NodeEntry(
        "JoyVASA Render Video", "JoyVASA/render",
        ("Renders the frames and encodes them into an mp4 (H.264, with the speech as AAC) as they come, a "
         "chunk at a time, so a clip of any length needs the memory of a few frames (Warp and Render holds "
         "them all). Pastes back into the photo like Warp and Render. Outputs a VIDEO for Save Video, Preview "
         "Video or Get Video Components, and the file's path.")),
    "JoyVASASaveMotion": NodeEntry(
        "JoyVASA Save Motion", "JoyVASA/motion",
        ("Saves the motion as a safetensors file in output/ (frames, fps, seed and sampler settings). Copy it "
         "to input/ or pick it with its [output] name in Load Motion to reuse it on another face.")),
    "JoyVASALoadMotion": NodeEntry(
        "JoyVASA Load Motion", "JoyVASA/motion",
        ("Loads a motion saved by Save Motion from input/ (or output/, the names ending in [output]).")),
    "JoyVASAMotionFromVideo": NodeEntry(
        "JoyVASA Motion From Video", "JoyVASA/motion",
        ("LivePortrait's video-driven motion: finds the face on every frame, crops one steady square around it"
         " and reads head pose and expression with the motion extractor. Drives any portrait, mixes with "
         "speech motion.")),
    "JoyVASAMixMotion": NodeEntry(
        "JoyVASA Mix Motion", "JoyVASA/motion",
        ("Expression from one motion, head pose from another, lips from a third: e.g. the head of a driving "
         "video with the lips of the speech. The result has the expression motion's length and fps.")),
    "JoyVASAEditMotion": NodeEntry(
        "JoyVASA Edit Motion", "JoyVASA/motion",
        ("Tone each part of a motion up or down (multipliers scale the change from frame 0: 0 holds the part "
         "still, 1 keeps it) and turn the whole clip by a constant head pose.")),
    "JoyVASAFitMotion": NodeEntry(
        "JoyVASA Fit Motion", "JoyVASA/motion",
        ("Trim a motion, then loop, ping-pong or hold it to a length in frames.")),
    "JoyVASACrossfadeMotion": NodeEntry(
        "JoyVASA Crossfade Motion", "JoyVASA/motion",
        ("One motion after the other, blended over the overlap (at most the shorter one). The second is "
         "retimed to the first's fps.")),
    "JoyVASAAddBlinks": NodeEntry(
        "JoyVASA Add Blinks", "JoyVASA/motion",
        ("Blinks on a natural, seeded schedule, rendered through LivePortrait's eye-retargeting network (needs"
         " the stitching/retargeting file and a face with detected eyes). if_none adds them only when the "
         "motion has none.")),
    "JoyVASAMotionPreview": NodeEntry(
        "JoyVASA Motion Preview", "JoyVASA/motion",
        ("Plots head rotation, translation, scale, mouth and eye opening over time, with the speech "
         "underneath: check a motion before rendering minutes of video.")),
    "JoyVASAExportDrivingTemplate": NodeEntry(
        "JoyVASA Export Driving Template", "JoyVASA/motion",
        ("Writes the motion as a LivePortrait driving template (.pkl) in output/: drive a face with it in "
         "LivePortrait (-d motion.pkl) or FasterLivePortrait; it loads back here unchanged.")),
    "JoyVASALoadDrivingTemplate": NodeEntry(
        "JoyVASA Load Driving Template", "JoyVASA/motion",
        ("Loads a LivePortrait / FasterLivePortrait driving template (.pkl) from input/ (or output/) as a "
         "motion. Only numpy arrays and plain containers are unpickled: a file that tries to run code is "
         "refused.")),
    "JoyVASALive": NodeEntry(
        "JoyVASA Live", "JoyVASA/live",
        ("Goes live: the face talks in the browser while you speak. Running the node offers the models and "
         "the face on this ComfyUI server; its link opens the live page, where Start streams the microphone "
         "(or a chosen speech file) and the face comes back as it is made, with its latency and fps. Each "
         "browser tab gets its own session; running the node again with other inputs updates the source.")),
    "JoyVASASampleMotion": NodeEntry("JoyVASA Sample Motion (old name)", "JoyVASA/motion", _SAMPLE_MOTION, hidden=True),
}
