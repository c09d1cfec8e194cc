"""The whole job as a composition of the stages, one function per node of the graph:

    LoadReferenceFace -> ExtractAppearance ------------------------------------------.
    EncodeAudio -> SampleMotionDiffusion -> ComputeTargetKeypoints -> WarpAndRender -> frames

Per-source work happens once (F, M, W's source compression, the paste-back grid and mask); per-frame work runs in
chunks of ``batch_size`` frames through W and G at once, with progress and cancellation between chunks.
``render_frames`` yields chunks so a long clip streams to the video writer instead of sitting in memory.

Defaults are the reference web demo's path for humans (crop, relative motion with the hull multiplier, stitching,
lip normalisation, paste-back, the web guidance scale); ``preset="cli"`` is the reference command line's path, and
animals get the whole image and no stitching (``animate_options``). The presets themselves live beside their
options: ``KeypointOptions.web()/cli()/animal()`` and ``SamplingOptions.web()/cli()/animal()``. Frames have the
photo's size wherever the crop allows it (:func:`pastes_back`), otherwise they are G's 512 crop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .audio import SAMPLE_RATE
from .audio.io import load_audio
from .errors import AudioInputError, FaceInputError, MotionError
from .face.crop import limited_size
from .face.driving import driving_crops
from .face.pasteback import PasteBack, PictureArea
from .face.reference import ReferenceFace, ReferenceOptions, prepare_reference
from .keypoints import KeypointComposer, KeypointInfo, KeypointOptions, MotionFrames, keypoint_info_from_heads
from .loading import bundled_face_detector
from .motion.blinks import BlinkOptions, apply_blinks, blink_delta
from .motion.config import MotionGeneratorConfig
from .motion.edit import fit_length, lips_absolute, mix, motion_from_pose, reference_frame, trim
from .motion.sampler import (
    SamplingOptions,
    WindowPlan,
    audio_model_fingerprint,
    encode_windows,
    generate_motion,
    plan_windows,
)
from .motion.sequence import MotionSequence, non_finite_fields
from .progress import Progress, ensure_progress
from .types import Appearance, LivePortraitModels, MotionModel, Speech, TargetKeypoints
from .validate import check_frames, estimate_video_bytes, require_numbers
from .video import VideoFile, VideoWriter

log = logging.getLogger(__name__)

PRESETS = ("web", "cli")
KEYPOINT_PRESETS = ("auto", "web", "cli", "animal")  # auto = the animal path for an animal face, else web
KEYPOINT_CHUNK = 1024  # frames per keypoint-composition pass (tiny tensors; bounds memory for hour-long clips)


# ---------------------------------------------------------------------------------------------------------------------
# Options and presets


@dataclass(frozen=True)
class AnimateOptions:
    """Every choice of one job. Build it with :func:`animate_options` rather than by hand."""

    mode: str = "human"
    preset: str = "web"
    reference: ReferenceOptions = field(default_factory=ReferenceOptions)
    sampling: SamplingOptions = field(default_factory=SamplingOptions.web)
    keypoints: KeypointOptions = field(default_factory=KeypointOptions.web)
    paste_back: bool = True
    batch_size: int | None = None  # None: default_batch_size(device)


def animate_options(
    preset: str = "web",
    animal: bool = False,
    crop: bool | None = None,
    stitching: bool | None = None,
    paste_back: bool | None = None,
    batch_size: int | None = None,
    sampling: dict[str, Any] | None = None,
    keypoints: dict[str, Any] | None = None,
    reference: dict[str, Any] | None = None,
) -> AnimateOptions:
    """The preset's options with the user's changes on top.

    ``web`` (default): the reference web demo, which made the published results (crop, hull multiplier, stitching,
    lip normalisation, paste-back, ``SamplingOptions.web()``). ``cli``: the reference command line (no crop, no hull
    multiplier, no stitching, no lip normalisation, multiplier 1.10, ``SamplingOptions.cli()``). ``animal``: the whole
    image, always relative with the hull multiplier, source scale, no stitching. ``crop``/``stitching``/``paste_back``
    switch single features (``paste_back=False``: G's 512 crop rather than the photo's size);
    ``sampling``/``keypoints``/``reference`` replace fields of those option objects (``reference={"crop":
    "squeeze"}``: the reference's squeezed whole image).
    """
    if preset not in PRESETS:
        raise ValueError(f"animate options: preset must be one of {PRESETS}, got {preset!r}")
    web = preset == "web"
    kp = _preset_keypoints(preset, animal)
    paste = True  # at the photo's size wherever the crop allows it (pastes_back)
    if animal:
        ref = ReferenceOptions(mode="animal")
    else:
        ref = ReferenceOptions(mode="human", crop="face" if web else "whole")
    sampling_options = _preset_sampling(preset, animal)
    if crop is not None:
        if crop and animal:
            raise ValueError("animal mode has no face detector: give a box (crop 'box', --box) to crop an animal")
        ref = replace(ref, crop="face" if crop else "whole")
    if stitching is not None:
        kp = replace(kp, stitching=stitching)
    if paste_back is not None:
        paste = paste_back
    if sampling:
        sampling_options = replace(sampling_options, **sampling)
    if keypoints:
        kp = replace(kp, **keypoints)
    if reference:
        ref = replace(ref, **reference)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"animate options: batch_size must be >= 1, got {batch_size}")
    return AnimateOptions(mode="animal" if animal else "human", preset=preset, reference=ref, sampling=sampling_options,
                          keypoints=kp, paste_back=paste, batch_size=batch_size)


def _preset_keypoints(preset: str, animal: bool) -> KeypointOptions:
    if animal:
        return KeypointOptions.animal()
    return KeypointOptions.web() if preset == "web" else KeypointOptions.cli()


def _preset_sampling(preset: str, animal: bool) -> SamplingOptions:
    if preset == "cli":
        return SamplingOptions.cli()
    return SamplingOptions.animal() if animal else SamplingOptions.web()


def keypoint_options(
    preset: str = "auto",
    face_mode: str = "human",
    relative_adjustments: bool | None = None,
    stitching: bool | None = None,
    normalize_lip: bool | None = None,
    driving_multiplier: float = 0.0,
    animation_region: str | None = None,
) -> KeypointOptions:
    """The keypoint options of ``preset`` (one of ``KEYPOINT_PRESETS``) for a face of ``face_mode``, with single
    features switched: None keeps the preset's, and so does a ``driving_multiplier`` of 0 (1.0 web, 1.10 cli)."""
    if preset not in KEYPOINT_PRESETS:
        raise ValueError(f"keypoint options: preset must be one of {KEYPOINT_PRESETS}, got {preset!r}")
    require_numbers({"driving_multiplier": driving_multiplier})
    animal = preset == "animal" or (preset == "auto" and face_mode == "animal")
    changes: dict[str, Any] = {
        "relative_adjustments": relative_adjustments, "stitching": stitching, "normalize_lip": normalize_lip,
        "animation_region": animation_region, "driving_multiplier": driving_multiplier or None,
    }
    return replace(_preset_keypoints("cli" if preset == "cli" else "web", animal),
                   **{k: v for k, v in changes.items() if v is not None})


# ---------------------------------------------------------------------------------------------------------------------
# Stages


def box_corners(box: tuple[float, ...]) -> tuple[float, float, float, float]:
    """A box as x, y, width, height (how a user measures it) -> the corners x0, y0, x1, y1 the crop takes."""
    x, y, w, h = box
    return (x, y, x + w, y + h)


def reference_box(crop: str, x: float, y: float, w: float, h: float) -> tuple[float, float, float, float] | None:
    """LoadReferenceFace's box widgets: the corners for crop ``box`` (a positive width and height needed), else
    None (the widgets are ignored)."""
    if crop != "box":
        return None
    if w <= 0 or h <= 0:
        raise FaceInputError(f"crop 'box' needs box_w and box_h above 0 (got {w}x{h}): set the face's rectangle in "
                             "image pixels, box_x/box_y its top-left corner.")
    return box_corners((x, y, w, h))


def load_reference_face(image: Any, detector: Any = None, options: ReferenceOptions | None = None) -> ReferenceFace:
    """LoadReferenceFace: find, choose and crop the face (see ``face.reference.prepare_reference``). A human face
    to be found without a detector or a mask gets the bundled detector (short range, then full range)."""
    options = options or ReferenceOptions()
    if detector is None and options.mode == "human" and options.crop in ("auto", "face") and options.mask is None:
        detector = bundled_face_detector("auto")
    return prepare_reference(image, detector, options)


def crop_previews(reference: ReferenceFace) -> torch.Tensor:
    """The 512x512 crops as a (B, 512, 512, 3) float image batch in [0, 1], to check the framing."""
    return torch.from_numpy(np.stack([f.crop.crop512 for f in reference.faces])).float().div(255)


def _image_tensor(crops256: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B,256,256,3) uint8 -> (B,3,256,256) float in [0,1], as the reference's ``prepare_source``."""
    x = torch.from_numpy(np.ascontiguousarray(crops256)).to(device)
    return x.permute(0, 3, 1, 2).to(torch.float32).div_(255).clamp_(0, 1)


@torch.no_grad()
def extract_appearance(models: LivePortraitModels, reference: ReferenceFace, index: int = 0) -> Appearance:
    """ExtractAppearance: F, M and W's source compression on face ``index`` of the reference, once per source."""
    if not 0 <= index < len(reference):
        raise FaceInputError(f"extract appearance: face index {index} is out of range; the reference holds "
                             f"{len(reference)} image(s).")
    face = reference[index]
    x = _image_tensor(face.crop256[None], models.device)
    with models.autocast():
        feature = models.appearance(x).float()
        heads = models.motion_extractor(x)
    info = keypoint_info_from_heads(heads)
    with models.autocast():
        compressed = models.warping.compress_source(feature).float()
    eye = lip = None
    if face.ratios is not None:
        if face.ratios.eye_left is not None and face.ratios.eye_right is not None:
            eye = torch.tensor([[face.ratios.eye_left, face.ratios.eye_right]], dtype=torch.float32)
        if face.ratios.lip is not None:
            lip = torch.tensor([[face.ratios.lip]], dtype=torch.float32)
    return Appearance(feature=feature, info=info, x_s=info.transformed(), compressed=compressed, eye_ratio=eye,
                      lip_ratio=lip, mode=reference.mode)


def speech_window_plan(
    n_samples: int, leading_silence: bool = True, motion_model: MotionModel | None = None,
) -> WindowPlan:
    """How ``n_samples`` of 16 kHz speech are cut into windows, and so how many frames are sampled, for
    ``motion_model`` (None: the released generator's frame and window size), known before any model loads."""
    config = motion_model.config if motion_model is not None else MotionGeneratorConfig()
    return plan_windows(n_samples, config.samples_per_frame, config.n_motions, leading_silence)


def prepare_speech(
    audio: Any, motion_model: MotionModel | None = None, sample_rate: int | None = None,
    leading_silence: bool = True, source: str | None = None, progress: Progress | None = None,
) -> Speech:
    """EncodeAudio: decode/downmix/resample to 16 kHz mono, plan the windows (frame count known up front) and, given
    the motion model, run HuBERT on every window once.

    The features depend on the audio, the padding and the model only, so every later ``sample_motion`` (another
    seed, cfg or step count) reuses them. ``audio`` may be a ``Speech``: its window features are kept when this
    model (or no model: its own window size then) and padding made them, else its waveform is encoded again.
    """
    previous = audio if isinstance(audio, Speech) else None
    if previous is not None:
        audio, sample_rate = previous.waveform, previous.sample_rate
        source = source if source is not None else previous.source
    if sample_rate is None and isinstance(audio, (torch.Tensor, np.ndarray)):
        sample_rate = SAMPLE_RATE  # raw samples without a rate: the generator's own rate
    wave = load_audio(audio, sample_rate)
    if source is None and (isinstance(audio, str) or hasattr(audio, "__fspath__")):
        source = os.fspath(audio)
    if motion_model is None and previous is not None:
        old = previous.plan
        plan = plan_windows(int(wave.shape[-1]), old.samples_per_frame, old.window_frames, leading_silence)
    else:
        plan = speech_window_plan(int(wave.shape[-1]), leading_silence, motion_model)
    check_frames(plan.n_frames, "prepare speech: the speech")
    wave = wave.float().cpu()
    if motion_model is None:
        if previous is not None and previous.plan == plan:
            return replace(previous, source=source)
        return Speech(waveform=wave, plan=plan, sample_rate=SAMPLE_RATE, source=source)
    fingerprint = audio_model_fingerprint(motion_model.generator)
    if previous is not None and previous.plan == plan and previous.model_fingerprint == fingerprint:
        return replace(previous, source=source)
    features = encode_windows(motion_model.generator, wave, leading_silence, progress)[0]
    return Speech(waveform=wave, plan=plan, sample_rate=SAMPLE_RATE, source=source, window_features=features,
                  model_fingerprint=fingerprint)


def sample_motion(
    motion_model: MotionModel, audio: Speech, options: SamplingOptions | None = None,
    progress: Progress | None = None,
) -> MotionSequence:
    """SampleMotionDiffusion: audio -> de-normalised, smoothed motion (default options: ``SamplingOptions.web()``).

    Uses the window features of ``audio`` when it has them (no HuBERT pass), else encodes each window while sampling.
    """
    options = options or SamplingOptions.web()
    if options.leading_silence != (audio.plan.leading_pad > 0):
        options = replace(options, leading_silence=audio.plan.leading_pad > 0)
    features = None
    if audio.window_features is not None:
        fingerprint = audio_model_fingerprint(motion_model.generator)
        if audio.model_fingerprint != fingerprint:
            raise AudioInputError(
                f"sample motion: the audio features were computed with another motion model (fingerprint "
                f"{audio.model_fingerprint}, this model {fingerprint}). Connect the same motion model to Encode "
                "Audio, or leave its motion_model input empty."
            )
        features = audio.window_features
    return generate_motion(motion_model.generator, audio.waveform, motion_model.template, options, progress=progress,
                           window_features=features)


@torch.no_grad()
def extract_motion(
    models: LivePortraitModels, crops256: np.ndarray, batch_size: int = 16, progress: Progress | None = None,
) -> KeypointInfo:
    """The motion extractor M on (N, 256, 256, 3) uint8 crops, ``batch_size`` at a time: one KeypointInfo of N."""
    progress = ensure_progress(progress)
    if batch_size < 1:
        raise ValueError(f"motion from video: batch_size must be >= 1, got {batch_size}")
    n = len(crops256)
    parts = []
    for lo in range(0, n, batch_size):
        progress.check_cancel()
        with models.autocast():
            heads = models.motion_extractor(_image_tensor(crops256[lo : lo + batch_size], models.device))
        parts.append(keypoint_info_from_heads(heads).to("cpu"))
        progress.update(min(lo + batch_size, n), n)
    return KeypointInfo(**{k: torch.cat([getattr(p, k) for p in parts]) for k in parts[0].__dict__})


def motion_from_video(
    models: LivePortraitModels, frames: Any, detector: Any = None, fps: float = 25, crop: bool = True,
    batch_size: int = 16, progress: Progress | None = None,
) -> MotionSequence:
    """MotionFromVideo: crop every frame as LivePortrait's video path does (``face.driving``; the bundled detector
    when none is given), run M on the crops and return the motion the sampler's consumers take. Its lips are
    composed relatively, as LivePortrait composes a driving video (``lips_origin`` "video"); no smoothing, the frame
    rate is the video's (rounded)."""
    rate = int(round(float(fps)))
    if rate < 1:
        raise ValueError(f"motion from video: fps must be at least 1, got {fps}")
    if crop and detector is None:
        detector = bundled_face_detector("auto")  # short range, then full range, as for the reference face
    crops = driving_crops(frames, detector, crop=crop)
    info = extract_motion(models, crops.crops256, batch_size, progress)
    settings = {"source": "video", "lips_origin": "video", "crop": crop, "frames_without_face": list(crops.missing)}
    return motion_from_pose(exp=info.exp, scale=info.scale, t=info.t, pitch=info.pitch, yaw=info.yaw, roll=info.roll,
                            R=info.R, fps=rate, settings=settings)


def video_motion_batch_size(render_batch_size: int | None) -> int:
    """Frames per motion-extractor pass for a driving video: the render's batch, at least 8 (M is small, so a
    larger batch pays on every device)."""
    return max(render_batch_size or 0, 8)


def compose_motion(
    motions: dict[str, MotionSequence], expression: str, head: str | None = None, lips: str | None = None,
    blinks: BlinkOptions | None = None,
) -> MotionSequence:
    """The motion a job renders: the expression from ``motions[expression]``, the head pose and the lips from the
    sources named by ``head`` / ``lips`` (None: the expression's own), then the blinks."""
    parts = {k: motions[v] for k, v in (("head", head), ("lips", lips)) if v and v != expression}
    motion = mix(motions[expression], **parts)
    return apply_blinks(motion, blinks) if blinks is not None else motion


def fit_motion(motion: MotionSequence, start: int = 0, stop: int = 0, length: int = 0,
               mode: str = "loop") -> MotionSequence:
    """FitMotion: frames [start, stop) (``stop`` 0: to the end), then looped / ping-ponged / held to ``length``
    frames (0: the trimmed length)."""
    part = trim(motion, start, stop or None)
    return fit_length(part, length, mode) if length else part


def motion_frames(motion: MotionSequence, start: int = 0, stop: int | None = None) -> MotionFrames:
    """Frames [start, stop) of a motion sequence as LivePortrait driving motion."""
    sl = slice(start, stop)
    return MotionFrames(exp=motion.exp[sl].reshape(-1, 21, 3), scale=motion.scale[sl].reshape(-1, 1),
                        t=motion.t[sl].reshape(-1, 3), R=motion.R[sl])


@torch.no_grad()
def compute_target_keypoints(
    models: LivePortraitModels, appearance: Appearance, motion: MotionSequence,
    options: KeypointOptions | None = None, progress: Progress | None = None,
) -> TargetKeypoints:
    """ComputeTargetKeypoints: x_d of every frame, composed relative to the motion's reference frame."""
    progress = ensure_progress(progress)
    if motion.n_frames < 1:
        raise ValueError("compute keypoints: the motion has no frames")
    composer = keypoint_composer(models, appearance, motion, options)
    n = motion.n_frames
    out = []
    for start in range(0, n, KEYPOINT_CHUNK):
        progress.check_cancel()
        out.append(compose_keypoints(models, composer, appearance, motion, start, start + KEYPOINT_CHUNK))
        progress.update(min(start + KEYPOINT_CHUNK, n), n)
    return TargetKeypoints(x_d=torch.cat(out), x_s=composer.x_s.float().cpu(), options=composer.options,
                           fps=motion.fps, mode=appearance.mode)


@torch.no_grad()
def keypoint_composer(
    models: LivePortraitModels, appearance: Appearance, motion: MotionSequence, options: KeypointOptions | None = None,
) -> KeypointComposer:
    """The per-source state of ComputeTargetKeypoints, with ``motion``'s frame 0 as the reference: built once, then
    :func:`compose_keypoints` turns any frames of that motion (or of its continuation, streamed) into x_d."""
    options = options or KeypointOptions.web()
    if appearance.batch_size != 1:
        raise FaceInputError(f"compute keypoints: one source face per job, the appearance holds "
                             f"{appearance.batch_size}; extract the appearance of one face.")
    dev = models.device
    needs_net = (options.stitching or options.eye_retargeting or options.lip_retargeting
                 or (options.normalize_lip and appearance.lip_ratio is not None))
    if needs_net and models.stitching is None:
        raise FaceInputError("compute keypoints: stitching / lip normalisation need the stitching network; load "
                             "stitching_retargeting_module or turn them off.")
    if options.lip_absolute and not lips_absolute(motion):
        options = replace(options, lip_absolute=False)  # video / template lips: LivePortrait's relative composition
    if motion.eye_open is not None and appearance.eye_ratio is not None and models.stitching is None:
        raise FaceInputError("compute keypoints: the motion has blinks / eye openness, which need the stitching and "
                             "retargeting network; load stitching_retargeting_module or remove the blinks.")
    lip = None if appearance.lip_ratio is None else appearance.lip_ratio.to(dev)
    eye = None if appearance.eye_ratio is None else appearance.eye_ratio.to(dev)
    return KeypointComposer(
        source=appearance.info.to(dev), reference=_on_device(reference_frame(motion), dev), options=options,
        retargeting=models.stitching, source_lip_ratio=lip, source_eye_ratio=eye,
    )


@torch.no_grad()
def compose_keypoints(
    models: LivePortraitModels, composer: KeypointComposer, appearance: Appearance, motion: MotionSequence,
    start: int = 0, stop: int | None = None,
) -> torch.Tensor:
    """x_d (n, 21, 3) on the CPU of frames [start, stop) of ``motion``, blinks (its eye track) included."""
    dev = models.device
    eye_delta = None
    if motion.eye_open is not None and appearance.eye_ratio is not None:
        eye_open = motion.eye_open[start:stop].to(dev, torch.float32)
        eye_delta = blink_delta(models.stitching, composer.x_s, appearance.eye_ratio.to(dev), eye_open)
    frames = _on_device(motion_frames(motion, start, stop), dev)
    return composer(frames, eye_delta=eye_delta).x_d.float().cpu()


def _on_device(frames: MotionFrames, device: torch.device) -> MotionFrames:
    return MotionFrames(*(t.to(device=device, dtype=torch.float32) for t in (frames.exp, frames.scale, frames.t,
                                                                               frames.R)))


def output_size_estimate(image_shape: tuple[int, ...], paste_back: bool) -> tuple[int, int]:
    """(width, height) of the video before any model loads: the photo's (as shrunk for the crop) with paste-back,
    else the crop's."""
    if not paste_back:
        return ReferenceOptions.dsize, ReferenceOptions.dsize
    h, w = limited_size(image_shape[0], image_shape[1], ReferenceOptions.max_dim)
    return w + w % 2, h + h % 2


def default_batch_size(device: torch.device) -> int:
    """Frames per W/G pass when the caller does not choose: 1 on CPU (a larger batch only grows the working set
    there: bench/bench_render.py --batch), 8 on a GPU, whose throughput needs the parallel work."""
    return 1 if device.type == "cpu" else 8


def pastes_back(wanted: bool, stitching: bool, whole_image: bool) -> bool:
    """Whether the frames come back at the photo's size: asked for, and either a whole-image crop (its square holds
    the whole picture, whose area is taken back out, stitching or not) or a face crop with stitching on (without it
    the shoulders move, so the crop no longer fits the photo; the reference pastes back only with stitching)."""
    return wanted and (whole_image or stitching)


def paste_back_into_photo(
    reference: ReferenceFace | None, stitching: bool, wanted: bool = True, index: int = 0, crop_size: int = 512,
) -> PasteBack | PictureArea | None:
    """What brings the frames of photo ``index`` of ``reference`` to the photo's size: the ``PasteBack`` of a face
    crop (mask and sampling grid warped once per source) or the ``PictureArea`` of a whole-image crop; None when the
    frames stay G's crop (see :func:`pastes_back`; a request that stitching being off refuses is logged)."""
    if reference is not None and not 0 <= index < len(reference):
        raise FaceInputError(f"render: image_index {index} is out of range: the face holds {len(reference)} "
                             "image(s); use the index given to Extract Appearance.")
    if not wanted or reference is None:
        return None
    face = reference[index]
    whole = face.crop.method == "whole"
    if not pastes_back(wanted, stitching, whole):
        log.warning("render: paste-back skipped: stitching is off (the reference pastes back only with "
                    "stitching); the frames are the %d crop.", crop_size)
        return None
    if whole:
        return PictureArea(face.image.shape[1], face.image.shape[0], face.crop.M_o2c, crop_size)
    return PasteBack(face.image, face.crop.M_c2o, crop_size=crop_size)


def check_renderable(keypoints: TargetKeypoints) -> None:
    """The last gate before pixels: at most an hour of frames, and every keypoint a number (a NaN renders black)."""
    check_frames(keypoints.n_frames, "render: the video")
    bad = non_finite_fields({"keypoints": keypoints.x_d, "source keypoints": keypoints.x_s})
    if bad:
        raise MotionError(f"render: the target keypoints hold NaN or Inf ({bad}); the motion or the face they were "
                          "computed from is broken, so nothing is rendered.")


@torch.no_grad()
def render_frames(
    models: LivePortraitModels, appearance: Appearance, keypoints: TargetKeypoints,
    paste_back: PasteBack | PictureArea | None = None, batch_size: int | None = None, progress: Progress | None = None,
    as_uint8: bool = False,
) -> Iterator[torch.Tensor]:
    """Yield (n, H, W, 3) CPU frames, ``batch_size`` at a time (default :func:`default_batch_size`): W and G on the
    chunk, then paste-back.

    Frames are float in [0, 1] (a ComfyUI IMAGE chunk), or uint8 truncated like the reference's writer with
    ``as_uint8``. Without ``paste_back`` the frames are G's crop (512x512). The finishing of a chunk (paste-back,
    conversion, the copy to the CPU) runs in a worker thread while the next chunk renders, so a chunk is yielded
    one chunk after it was rendered; a consumer that writes video should use ``VideoWriter``, which encodes in a
    thread of its own.
    """
    check_renderable(keypoints)
    progress = ensure_progress(progress)
    dev = models.device
    batch_size = default_batch_size(dev) if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"render: batch_size must be >= 1, got {batch_size}")
    feature = appearance.feature.to(dev)
    compressed = None if appearance.compressed is None else appearance.compressed.to(dev)
    x_s = appearance.x_s.to(dev, torch.float32)
    total = keypoints.n_frames

    @torch.no_grad()
    def finish(image: torch.Tensor) -> torch.Tensor:
        image = image.float()
        if paste_back is not None:
            return paste_back(image, layout="nchw", as_uint8=as_uint8).cpu()
        frames = image.clamp(0, 1).permute(0, 2, 3, 1)
        if as_uint8:
            frames = frames.mul(255).to(torch.uint8)  # truncation, as the reference's astype(uint8)
        return frames.cpu()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="joyvasa-finish") as pool:
        pending: tuple[Future, int] | None = None
        for lo in range(0, total, batch_size):
            progress.check_cancel()
            hi = min(lo + batch_size, total)
            x_d = keypoints.x_d[lo:hi].to(dev, torch.float32)
            with models.autocast():
                warped = models.warping(feature, kp_source=x_s, kp_driving=x_d, compressed=compressed)["out"]
                image = models.spade(warped)
            future = pool.submit(finish, image)
            if pending is not None:
                chunk = pending[0].result()
                yield chunk
                progress.update(pending[1], total, chunk[-1])
            pending = (future, hi)
        if pending is not None:
            chunk = pending[0].result()
            yield chunk
            progress.update(pending[1], total, chunk[-1])


def _frame_size(models: LivePortraitModels, paste_back: PasteBack | PictureArea | None) -> tuple[int, int]:
    """(width, height) of the rendered frames: the original image's with paste-back, else G's crop."""
    if paste_back is not None:
        return paste_back.width, paste_back.height
    return models.crop_size, models.crop_size


def _gather(chunks: Iterator[torch.Tensor], n_frames: int, size: tuple[int, int]) -> torch.Tensor:
    """Fill one (N, H, W, 3) tensor chunk by chunk: no list of chunks and no second copy at the end."""
    width, height = size
    frames = torch.empty(n_frames, height, width, 3)
    done = 0
    for chunk in chunks:
        frames[done : done + chunk.shape[0]] = chunk
        done += chunk.shape[0]
    return frames


@torch.no_grad()
def render_video(
    models: LivePortraitModels, appearance: Appearance, keypoints: TargetKeypoints, path: str | os.PathLike,
    paste_back: PasteBack | PictureArea | None = None, batch_size: int | None = None, audio: torch.Tensor | None = None,
    crf: int = 18, progress: Progress | None = None, overwrite: bool = False,
) -> VideoFile:
    """Render straight into an H.264 + AAC mp4, chunk by chunk: memory holds one chunk of frames, however long the
    clip. ``audio`` is the 16 kHz mono speech to mux (None: a silent video). The file appears only when complete."""
    check_renderable(keypoints)
    with VideoWriter(path, fps=keypoints.fps, crf=crf, audio=audio, overwrite=overwrite) as writer:
        for chunk in render_frames(models, appearance, keypoints, paste_back, batch_size, progress, as_uint8=True):
            writer.write(chunk)
    return VideoFile(path=writer.path, n_frames=writer.n_frames, fps=keypoints.fps, size=writer.size)


def estimate_render_bytes(
    models: LivePortraitModels, keypoints: TargetKeypoints, paste_back: PasteBack | None, crf: int = 18,
    audio: torch.Tensor | None = None,
) -> int:
    """About how big :func:`render_video`'s mp4 will be (``audio``: its 16 kHz speech), to refuse a write the disk
    cannot hold before it starts."""
    width, height = _frame_size(models, paste_back)
    seconds = 0.0 if audio is None else audio.shape[-1] / SAMPLE_RATE
    return estimate_video_bytes(keypoints.n_frames, width, height, crf, seconds)


def warp_and_render(
    models: LivePortraitModels, appearance: Appearance, keypoints: TargetKeypoints,
    reference: ReferenceFace | None = None, paste_back: bool = True, batch_size: int | None = None,
    progress: Progress | None = None, index: int = 0,
) -> torch.Tensor:
    """WarpAndRender: every frame at once, (N, H, W, 3) float in [0, 1] (the original image's size with paste-back,
    see :func:`paste_back_into_photo`, else the 512 crop). For long clips prefer :func:`render_video`, which streams."""
    paster = paste_back_into_photo(reference, keypoints.options.stitching, paste_back, index, models.crop_size)
    chunks = render_frames(models, appearance, keypoints, paster, batch_size, progress)
    return _gather(chunks, keypoints.n_frames, _frame_size(models, paster))


def silent_audio(n_frames: int, fps: float) -> tuple[torch.Tensor, int]:
    """A (1, 1, samples) silent track as long as ``n_frames`` at ``fps`` (at least one sample), and its rate."""
    samples = int(round(n_frames / fps * SAMPLE_RATE))
    return torch.zeros(1, 1, max(samples, 1)), SAMPLE_RATE


# ---------------------------------------------------------------------------------------------------------------------
# The whole job


@dataclass(frozen=True, eq=False)
class SourceFace:
    """The source of an animation, made once and reused by every clip of that face: the reference face (crops,
    transforms, ratios) and its appearance (F's volume, source keypoints, W's source compression)."""

    reference: ReferenceFace
    appearance: Appearance

    @property
    def notes(self) -> tuple[str, ...]:
        return self.reference[0].notes


@dataclass(frozen=True, eq=False)
class Animation:
    """A prepared job: every stage up to the keypoints done, the frames still to render (stream or all at once)."""

    reference: ReferenceFace
    appearance: Appearance
    audio: Speech | None
    motion: MotionSequence
    keypoints: TargetKeypoints
    paste_back: PasteBack | PictureArea | None
    options: AnimateOptions

    @property
    def n_frames(self) -> int:
        return self.keypoints.n_frames

    @property
    def fps(self) -> int:
        return self.keypoints.fps

    def frame_size(self, models: LivePortraitModels) -> tuple[int, int]:
        """(width, height) of the output frames."""
        return _frame_size(models, self.paste_back)

    def frames(
        self, models: LivePortraitModels, progress: Progress | None = None, as_uint8: bool = False,
        batch_size: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Stream the frames in chunks of ``batch_size`` (default: the options', else the device's)."""
        return render_frames(models, self.appearance, self.keypoints, self.paste_back,
                             batch_size or self.options.batch_size, progress, as_uint8)

    def write_video(
        self, models: LivePortraitModels, path: str | os.PathLike, crf: int = 18, progress: Progress | None = None,
        overwrite: bool = False,
    ) -> VideoFile:
        """Stream the frames into an mp4 with the speech (see :func:`render_video`)."""
        audio = self.audio.waveform if self.audio is not None else None
        return render_video(models, self.appearance, self.keypoints, path, self.paste_back, self.options.batch_size,
                            audio, crf, progress, overwrite)

    def speech_frames_mismatch(self) -> str | None:
        """A note when the motion's length is not the speech's (a reused or mixed motion); the video follows the
        motion."""
        if self.audio is None:
            return None
        kept = self.audio.plan.kept_frames(self.options.sampling.lag_compensation)
        if kept.stop - kept.start == self.motion.n_frames:
            return None
        return (f"the motion has {self.motion.n_frames} frames, the speech needs {kept.stop - kept.start}; the video "
                "follows the motion.")


def prepare_face(
    image: Any, liveportrait: LivePortraitModels, detector: Any = None, options: AnimateOptions | None = None,
) -> SourceFace:
    """Find, crop and read the appearance of the reference face once (LoadReferenceFace + ExtractAppearance)."""
    options = options or animate_options()
    reference = load_reference_face(image, detector, options.reference)
    return SourceFace(reference=reference, appearance=extract_appearance(liveportrait, reference))


def animate(
    face: SourceFace, motion: MotionSequence, liveportrait: LivePortraitModels, options: AnimateOptions | None = None,
    audio: Speech | None = None,
) -> Animation:
    """A prepared face driven by ``motion``: the target keypoints and the paste-back, the frames left to render.
    ``audio`` is the speech for the sound track (None: a silent video)."""
    options = options or animate_options()
    keypoints = compute_target_keypoints(liveportrait, face.appearance, motion, options.keypoints)
    paster = paste_back_into_photo(face.reference, options.keypoints.stitching, options.paste_back,
                                   crop_size=liveportrait.crop_size)
    return Animation(reference=face.reference, appearance=face.appearance, audio=audio, motion=motion,
                     keypoints=keypoints, paste_back=paster, options=options)


def prepare_animation(
    image: Any,
    audio: Any,
    liveportrait: LivePortraitModels,
    motion_model: MotionModel | None = None,
    detector: Any = None,
    options: AnimateOptions | None = None,
    motion: MotionSequence | None = None,
    progress: Progress | None = None,
    sample_rate: int | None = None,
) -> Animation:
    """Everything but the pixels: face, appearance, audio, motion (sampled, or ``motion`` reused) and keypoints.

    ``audio`` may be None when ``motion`` is given (a silent video of a saved motion).
    """
    options = options or animate_options()
    if motion is None and motion_model is None:
        raise ValueError("animate: give a motion model to sample motion, or a saved motion to reuse")
    if motion is None and audio is None:
        raise ValueError("animate: give speech audio to sample motion from")
    face = prepare_face(image, liveportrait, detector, options)
    features = None
    if audio is not None:
        # HuBERT only when motion is to be sampled; a reused motion needs the waveform for the sound track alone.
        encoder = motion_model if motion is None else None
        features = prepare_speech(audio, encoder, sample_rate, options.sampling.leading_silence)
    if motion is None:
        motion = sample_motion(motion_model, features, options.sampling, progress)
    return animate(face, motion, liveportrait, options, features)
