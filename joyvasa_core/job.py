"""One talking-head job, the shape every front end drives: options -> plan -> checked inputs -> models -> run.

* :func:`plan_job` turns a mapping of the command line's option names (``cfg_scale`` or ``--cfg-scale``: a parsed
  command line, a manifest row) into a :class:`JobPlan`: every decision of the job, checked, with no file read and
  no model loaded, so tests and a batch's first pass can check it cheaply.
* :func:`check_job` reads and checks the plan's files (inputs readable, outputs writable, room on the disk): the
  rest of the validation, still before any model loads.
* :func:`load_job_models` fetches and loads what the plan needs into a :class:`~joyvasa_core.loading.ModelSet`, the
  holder a batch worker or a live session keeps between jobs.
* :func:`run_job` drives the pipeline's stages (``pipeline.prepare_face``, ``prepare_speech``, ``sample_motion``,
  ``compose_motion``, ``animate``, ``Animation.write_video``) and writes every output.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import JoyVASAError
from .validate import (
    CLI,
    MOTION_EXTS,
    PREVIEW_EXTS,
    TEMPLATE_EXTS,
    VIDEO_EXTS,
    Output,
    Words,
    check_input_file,
    check_input_folder,
    check_options,
    check_outputs,
    expression_source,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .loading import ModelSet
    from .motion.blinks import BlinkOptions
    from .motion.sequence import MotionSequence
    from .pipeline import AnimateOptions, Animation, SourceFace
    from .progress import Progress
    from .types import Speech
    from .video import VideoFile

SEED_DRAW_LIMIT = 2**31  # a drawn seed stays printable and fits every RNG
MOTION_SOURCES = ("speech", "video", "motion")
BLINK_MODES = ("off", "on", "if_none")
PRESETS = ("web", "cli")
DETECTORS = ("auto", "official", "bundled")
DTYPES = ("fp32", "fp16", "bf16", "auto")
SAMPLERS = ("ddpm", "ddim")

# Every option of a job, by the command line's name (``--cfg-scale`` is ``cfg_scale``), and its default. A manifest
# row may leave any of them out. ``models`` defaults to the per-user folder (``download.user_models_dir``).
OPTION_DEFAULTS: dict[str, Any] = {
    "image": None, "audio": None, "models": None, "download": True, "out": None, "overwrite": False,
    "animal": False, "preset": "web", "cfg_scale": None, "steps": None, "sampler": "ddpm", "seed": None,
    "device": "auto", "dtype": "auto", "no_crop": False, "no_pasteback": False, "no_stitching": False,
    "batch_size": None, "crf": 18, "detector": "auto", "detector_range": "auto", "face_index": 0,
    "face_order": "largest", "box": None, "save_motion": None, "motion": None, "motion_from_video": None,
    "head_from": None, "lips_from": None, "blinks": "off", "blink_rate": 15.0, "motion_preview": None,
    "export_template": None, "reference_lag": False,
}
FRONT_END_OPTIONS = ("quiet",)  # options of how a front end reports, not of the job


@dataclass(frozen=True)
class ModelsPlan:
    """Which models a job needs and how to load them; equal plans can share one loaded ``ModelSet``."""

    root: str
    animal: bool = False
    device: str = "auto"
    dtype: str = "auto"
    detector: str = "auto"
    detector_range: str = "auto"
    download: bool = True
    motion_model: bool = True  # JoyVASA, to sample motion from speech
    face_detector: bool = True  # humans only: to find the face, measure the lips or crop a driving video

    @property
    def features(self) -> list[str]:
        """The model-file features to fetch (``model_catalog``): optional files only when asked for by name."""
        from .model_catalog import ANIMAL, HUMAN, MOTION_GENERATOR, OFFICIAL_DETECTOR

        needed = [ANIMAL if self.animal else HUMAN] + ([MOTION_GENERATOR] if self.motion_model else [])
        if self.detector == "official" and not self.animal:
            needed.append(OFFICIAL_DETECTOR)
        return needed


@dataclass(frozen=True)
class MotionSources:
    """Where each part of the motion comes from: ``speech`` (sampled), ``video`` (read from a driving video) or
    ``motion`` (a saved motion); ``head`` / ``lips`` None keep the expression's own."""

    expression: str
    head: str | None = None
    lips: str | None = None

    @property
    def samples_speech(self) -> bool:
        return "speech" in (self.expression, self.head, self.lips)


@dataclass(frozen=True)
class JobPlan:
    """Every decision of one job, made from its options before any file is read or model loaded."""

    image: str
    out: str | None  # None: the live page's plan, which writes nothing
    options: AnimateOptions
    sources: MotionSources
    blinks: BlinkOptions
    models: ModelsPlan
    seed: int
    audio: str | None = None
    motion: str | None = None
    motion_from_video: str | None = None
    save_motion: str | None = None
    motion_preview: str | None = None
    export_template: str | None = None
    overwrite: bool = False
    crf: int = 18
    box: tuple[float, ...] | None = None
    steps: int | None = None
    sampler: str = "ddpm"
    notes: tuple[str, ...] = ()
    words: Words = CLI

    @property
    def video_batch_size(self) -> int:
        from .pipeline import video_motion_batch_size

        return video_motion_batch_size(self.options.batch_size)

    @property
    def pastes_back(self) -> bool:
        """Whether the frames come back at the photo's size (pasted back, or a whole-image crop's picture)."""
        from .face.reference import WHOLE_CROPS, crop_mode
        from .pipeline import pastes_back

        o = self.options
        return pastes_back(o.paste_back, o.keypoints.stitching, crop_mode(o.reference) in WHOLE_CROPS)


def option_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` by the command line's names (``--cfg-scale``, ``cfg-scale`` or ``cfg_scale``) over the defaults;
    an unknown name is an error that lists the known ones."""
    out = dict(OPTION_DEFAULTS)
    for key, value in values.items():
        name = str(key).lstrip("-").replace("-", "_")
        if name in FRONT_END_OPTIONS:
            continue
        if name not in OPTION_DEFAULTS:
            raise JoyVASAError(f"{CLI.name(name)}: not an option of a job; use one of "
                               f"{', '.join(CLI.name(k) for k in OPTION_DEFAULTS)}.")
        out[name] = value
    return out


def _with_example(v: dict[str, Any]) -> dict[str, Any]:
    """No ``image``: the shipped example portrait, and its speech unless a motion drives it."""
    if v["image"] is not None:
        return v
    from .examples import EXAMPLE_AUDIO, EXAMPLE_IMAGE

    v = {**v, "image": str(EXAMPLE_IMAGE)}
    if v["audio"] is None and v["motion"] is None and v["motion_from_video"] is None:
        v["audio"] = str(EXAMPLE_AUDIO)
    return v


def _animate_options(v: Mapping[str, Any]) -> AnimateOptions:
    from .pipeline import animate_options, box_corners

    sampling: dict[str, Any] = {"seed": v["seed"], "scheduler": v["sampler"],
                                "lag_compensation": not v["reference_lag"]}
    if v["cfg_scale"] is not None:
        sampling["cfg_scale"] = v["cfg_scale"]
    if v["steps"] is not None:
        sampling["num_steps"] = v["steps"]
    reference: dict[str, Any] = {"face_index": v["face_index"], "face_order": v["face_order"]}
    if v["no_crop"] == "squeeze":
        reference["crop"] = "squeeze"
    if v["box"] is not None:
        reference.update(crop="box", box=box_corners(v["box"]))
    return animate_options(
        preset=v["preset"], animal=v["animal"], crop=False if v["no_crop"] else None,
        stitching=False if v["no_stitching"] else None, paste_back=False if v["no_pasteback"] else None,
        batch_size=v["batch_size"], sampling=sampling, reference=reference,
    )


def plan_job(
    values: Mapping[str, Any], words: Words = CLI, draw_seed: Callable[[], int] | None = None,
    speech_from_viewers: bool = False,
) -> JobPlan:
    """The job described by ``values`` (command-line option names; missing ones take ``OPTION_DEFAULTS``), every
    option checked (``validate``), nothing read from disk. No seed: one is drawn (``draw_seed``) and kept in the
    plan, so the run can be repeated. ``speech_from_viewers``: the live page's plan, whose speech comes from the
    page's viewers as they speak: a portrait, no speech file and no output (``read_portrait`` is its file check)."""
    from .download import user_models_dir
    from .loading import resolve_device
    from .motion.blinks import job_blinks

    v = option_values(values) if speech_from_viewers else _with_example(option_values(values))
    if speech_from_viewers and v["image"] is None:
        raise JoyVASAError(f"{words.name('image')} missing: give the portrait the live page animates.")
    if v["out"] is None and not speech_from_viewers:
        raise JoyVASAError(f"{words.name('out')} missing: give the video file to write (.mp4).")
    device = resolve_device(v["device"])
    checked = {**v, "device_type": device.type}
    if speech_from_viewers:
        del checked["audio"]  # the viewers speak
    notes = check_options(checked, words)
    if v["seed"] is None:
        v["seed"] = (draw_seed or (lambda: secrets.randbelow(SEED_DRAW_LIMIT)))()
    try:
        options = _animate_options(v)
        blinks = job_blinks(v["blinks"], v["seed"], v["blink_rate"])
    except (TypeError, ValueError) as exc:
        raise JoyVASAError(f"options: {exc}") from None
    sources = MotionSources("speech" if speech_from_viewers else expression_source(v), v["head_from"], v["lips_from"])
    models = ModelsPlan(
        root=str(v["models"] if v["models"] is not None else user_models_dir()), animal=v["animal"],
        device=v["device"], dtype=v["dtype"], detector=v["detector"], detector_range=v["detector_range"],
        download=v["download"], motion_model=sources.samples_speech,
        face_detector=needs_face_detector(options, v["motion_from_video"] is not None),
    )
    return JobPlan(
        image=str(v["image"]), out=None if v["out"] is None else str(v["out"]), options=options, sources=sources,
        blinks=blinks, models=models,
        seed=v["seed"], audio=v["audio"], motion=v["motion"], motion_from_video=v["motion_from_video"],
        save_motion=v["save_motion"], motion_preview=v["motion_preview"], export_template=v["export_template"],
        overwrite=v["overwrite"], crf=v["crf"], box=v["box"], steps=v["steps"], sampler=v["sampler"],
        notes=tuple(notes), words=words,
    )


def needs_face_detector(options: AnimateOptions, driving_video: bool) -> bool:
    """A detector finds the face to crop, measures the lips to normalise them, and crops a driving video's frames."""
    return options.reference.crop not in ("whole", "squeeze", "box") or options.keypoints.normalize_lip or driving_video


# ---------------------------------------------------------------------------------------------------------------------
# The files: read and checked before the models load


@dataclass(frozen=True, eq=False)
class JobInputs:
    """A plan's files, read and checked: the photo, the speech and the motions, the paths to write."""

    image: np.ndarray  # (H, W, 3|4)
    speech: torch.Tensor | None  # (samples,) 16 kHz mono
    motion: MotionSequence | None  # the saved motion of ``motion``
    video: tuple[Any, float] | None  # (frames, fps) of ``motion_from_video``
    outputs: dict[str, Path]
    n_frames: int
    notes: tuple[str, ...] = field(default=())


@contextlib.contextmanager
def reading(key: str, words: Words = CLI) -> Iterator[None]:
    """An error met while reading an option's file starts with that option (``--audio: ...``)."""
    try:
        yield
    except JoyVASAError as exc:
        message = exc.for_cli()
        if message.startswith("--") or not words.flags:
            raise
        raise JoyVASAError(f"{words.name(key)}: {message}") from exc


def _check_files(plan: JobPlan) -> tuple[dict[str, Path | None], dict[str, Path], list[str]]:
    from .partials import remove_stale_partials

    w = plan.words
    check_input_folder("models", plan.models.root, w, "models folder holding liveportrait/ and joyvasa/")
    inputs = {
        "image": check_input_file("image", plan.image, w, "portrait image"),
        "audio": check_input_file("audio", plan.audio, w, "speech file") if plan.audio else None,
        "motion": check_input_file("motion", plan.motion, w, "motion file") if plan.motion else None,
        "motion_from_video": check_input_file("motion_from_video", plan.motion_from_video, w, "driving video")
        if plan.motion_from_video else None,
    }
    outputs, notes = check_outputs([Output("out", plan.out, VIDEO_EXTS, "video container"),
                                    Output("save_motion", plan.save_motion, MOTION_EXTS, "motion file"),
                                    Output("motion_preview", plan.motion_preview, PREVIEW_EXTS, "preview image"),
                                    Output("export_template", plan.export_template, TEMPLATE_EXTS,
                                           "driving template")],
                                   inputs, plan.overwrite, w)
    for folder in {p.parent for p in outputs.values()}:
        remove_stale_partials(folder)
    return inputs, outputs, notes


def check_job(plan: JobPlan) -> JobInputs:
    """Every file of ``plan`` checked and read (unreadable, blank, silent, or too big for the disk), before any model
    loads: the same step for one job and for each row of a batch."""
    from .audio import SAMPLE_RATE
    from .audio.io import load_audio
    from .checkpoints.motion_file import read_motion_file
    from .pipeline import output_size_estimate, speech_window_plan
    from .validate import check_frames, check_free_space, estimate_motion_bytes, estimate_video_bytes, speech_notes
    from .video import read_video

    w = plan.words
    inputs, outputs, notes = _check_files(plan)
    image = _portrait(inputs["image"], plan)
    with reading("audio", w):
        wave = load_audio(inputs["audio"]) if plan.audio else None
    with reading("motion", w):
        motion = read_motion_file(inputs["motion"]) if plan.motion else None
    with reading("motion_from_video", w):
        video = read_video(inputs["motion_from_video"]) if plan.motion_from_video else None
    seconds = 0.0 if wave is None else wave.shape[-1] / SAMPLE_RATE
    if wave is not None:
        notes += speech_notes(seconds, w)
    if plan.sources.expression == "motion":
        n_frames = motion.n_frames
    elif plan.sources.expression == "speech":
        n_frames = speech_window_plan(wave.shape[-1], plan.options.sampling.leading_silence).n_frames
    else:
        n_frames = len(video[0])
    source = {"speech": "audio", "motion": "motion", "video": "motion_from_video"}[plan.sources.expression]
    check_frames(n_frames, f"{w.name(source)} {inputs[source]}: the video")
    width, height = output_size_estimate(image.shape, plan.pastes_back)
    check_free_space("out", outputs["out"], estimate_video_bytes(n_frames, width, height, plan.crf, seconds), w)
    for key, template in (("save_motion", False), ("export_template", True)):
        if outputs.get(key) is not None:
            check_free_space(key, outputs[key], estimate_motion_bytes(n_frames, template), w, "the motion")
    return JobInputs(image=image, speech=wave, motion=motion, video=video, outputs=outputs, n_frames=n_frames,
                     notes=tuple(plan.notes) + tuple(notes))


def read_portrait(plan: JobPlan) -> Any:
    """The plan's portrait checked and read: the live page's one input file (it speaks through viewers)."""
    return _portrait(check_input_file("image", plan.image, plan.words, "portrait image"), plan)


def _portrait(path: Path, plan: JobPlan) -> Any:
    """The photo read, not blank, and the crop box (if any) inside it."""
    from .face.reference import check_image
    from .images import read_image

    image = read_image(path, "image", plan.words)
    check_image(image)
    check_options({"box": plan.box, "image_size": (image.shape[1], image.shape[0])}, plan.words)
    return image


# ---------------------------------------------------------------------------------------------------------------------
# The models


def load_job_models(
    plan: JobPlan | ModelsPlan, file_progress: Callable[[Any, int, int], None] | None = None, words: Words = CLI,
) -> tuple[ModelSet, list[Any]]:
    """The ``ModelSet`` a plan needs: missing files fetched (when allowed), then loaded; with it the checks that
    need the models (steps against the checkpoint's). Returns ``(models, fetched files)``."""
    from .download import download_missing
    from .loading import load_models

    need = plan.models if isinstance(plan, JobPlan) else plan
    fetched = download_missing(need.root, need.features, allow=need.download, progress=file_progress)
    with reading("models", words):
        models = load_models(need.root, animal=need.animal, device=need.device, dtype=need.dtype,
                             detector=need.detector, need_motion_model=need.motion_model,
                             detector_range=need.detector_range, need_detector=need.face_detector)
    if isinstance(plan, JobPlan):
        check_models(plan, models)
    return models, fetched


def check_models(plan: JobPlan, models: ModelSet) -> None:
    """The checks of a plan that need its models: a ddim step count within the checkpoint's."""
    if models.motion_model is not None:
        check_options({"sampler": plan.sampler, "steps": plan.steps,
                       "checkpoint_steps": models.motion_model.generator.config.n_diff_steps}, plan.words)


# ---------------------------------------------------------------------------------------------------------------------
# The run


def _silent(message: str) -> None:
    return None


@dataclass(frozen=True)
class JobReport:
    """How a run talks to its front end: ``log`` (progress lines), ``note`` (things about the result, shown even
    when quiet), ``progress(stage)`` a fresh ``Progress`` for ``"motion"`` or ``"render"`` (closed after the stage
    when it has ``close``)."""

    log: Callable[[str], None] = _silent
    note: Callable[[str], None] = _silent
    progress: Callable[[str], Progress] | None = None

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[Progress | None]:
        bar = self.progress(name) if self.progress is not None else None
        try:
            yield bar
        finally:
            close = getattr(bar, "close", None)
            if close is not None:
                close()


class StageCache:
    """What a front end running many jobs keeps between them: ``make()`` is the stage's work, a cache may hand back
    what it made for an earlier job with the same content instead (the batch keys it by content). This one keeps
    nothing."""

    def motion(self, plan: JobPlan, inputs: JobInputs, make: Callable[[], MotionSequence]) -> MotionSequence:
        """The motion sampled from the plan's speech."""
        return make()

    def face(self, plan: JobPlan, inputs: JobInputs, make: Callable[[], SourceFace]) -> SourceFace:
        """The plan's portrait, found, cropped and read by the appearance extractor."""
        return make()


def job_motions(
    plan: JobPlan, inputs: JobInputs, models: ModelSet, report: JobReport, cache: StageCache | None = None,
) -> tuple[dict[str, MotionSequence], Speech | None]:
    """Each motion the plan's sources name: sampled from the speech, read from the driving video, or the saved one;
    and the speech's features when this job encoded them (None: no speech sampled here, or the cache had it)."""
    from .pipeline import motion_from_video, prepare_speech, sample_motion

    motions: dict[str, MotionSequence] = {}
    encoded: list[Speech] = []
    if inputs.motion is not None:
        motions["motion"] = inputs.motion
    with report.stage("motion") as bar:
        if plan.sources.samples_speech:
            sampling = plan.options.sampling

            def sample() -> MotionSequence:
                encoded.append(prepare_speech(inputs.speech, models.motion_model,
                                            leading_silence=sampling.leading_silence))
                return sample_motion(models.motion_model, encoded[0], sampling, bar)

            motions["speech"] = (cache or StageCache()).motion(plan, inputs, sample)
            report.log(f"motion: {motions['speech']!r}")
        if inputs.video is not None:
            frames, fps = inputs.video
            motions["video"] = motion_from_video(models.liveportrait, frames, models.detector, fps=fps,
                                                 batch_size=plan.video_batch_size, progress=bar)
            report.log(f"video motion: {motions['video']!r}")
    return motions, (encoded[0] if encoded else None)


def write_side_outputs(plan: JobPlan, inputs: JobInputs, animation: Animation, report: JobReport) -> None:
    """The files besides the video: the motion used, a LivePortrait driving template, the motion preview."""
    from .audio import SAMPLE_RATE
    from .checkpoints.driving_template import write_driving_template
    from .checkpoints.motion_sequence import write_motion_sequence
    from .images import write_png
    from .motion.preview import render_motion_preview

    outputs = inputs.outputs
    if outputs.get("save_motion") is not None:
        write_motion_sequence(animation.motion, outputs["save_motion"])
        report.log(f"motion saved to {outputs['save_motion']}")
    if outputs.get("export_template") is not None:
        write_driving_template(animation.motion, outputs["export_template"])
        report.log(f"driving template written to {outputs['export_template']}")
    if outputs.get("motion_preview") is not None:
        speech = animation.audio
        # the motion starts with the leading silence only in the reference's timing
        lagged = speech is not None and not plan.options.sampling.lag_compensation
        delay = speech.plan.leading_pad / speech.sample_rate if lagged else 0.0
        plot = render_motion_preview(animation.motion, None if speech is None else speech.waveform,
                                     SAMPLE_RATE if speech is None else speech.sample_rate, audio_delay=delay)
        write_png(plot, outputs["motion_preview"], "motion_preview", plan.words)
        report.log(f"motion preview drawn to {outputs['motion_preview']}")


def run_job(
    plan: JobPlan, models: ModelSet, inputs: JobInputs | None = None, report: JobReport | None = None,
    cache: StageCache | None = None,
) -> VideoFile:
    """Run ``plan`` with loaded ``models`` (a ``ModelSet``; see :func:`load_job_models`): motion, face, keypoints,
    the side files, then the video, streamed to its final name. Returns the ``VideoFile`` written. ``cache`` lets
    a front end that runs many jobs reuse a sampled motion or a prepared face."""
    import torch

    from .pipeline import animate, compose_motion, default_batch_size, prepare_face, prepare_speech

    report = report or JobReport()
    inputs = inputs if inputs is not None else check_job(plan)
    lp = models.liveportrait
    with torch.inference_mode():
        cache = cache or StageCache()
        motions, features = job_motions(plan, inputs, models, report, cache)
        motion = compose_motion(motions, plan.sources.expression, plan.sources.head, plan.sources.lips, plan.blinks)
        face = cache.face(plan, inputs, lambda: prepare_face(inputs.image, lp, models.detector, plan.options))
        if features is None and inputs.speech is not None:  # the sound track of a reused or cached motion
            features = prepare_speech(inputs.speech, None, leading_silence=plan.options.sampling.leading_silence)
        animation = animate(face, motion, lp, plan.options, features)
    for note in face.notes + tuple(filter(None, [animation.speech_frames_mismatch()])):
        report.note(note)
    write_side_outputs(plan, inputs, animation, report)
    w, h = animation.frame_size(lp)
    batch = plan.options.batch_size or default_batch_size(lp.device)
    report.log(f"rendering {animation.n_frames} frames {w}x{h} on {lp.device} (batch {batch})")
    with report.stage("render") as bar, torch.inference_mode():
        return animation.write_video(lp, inputs.outputs["out"], crf=plan.crf, progress=bar, overwrite=plan.overwrite)
