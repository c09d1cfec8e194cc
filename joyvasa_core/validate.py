"""Every option of a job checked before any model loads, in one place for the command line and the nodes.

A check is a small entry: a row of ``RANGES`` for a number with bounds, or a function registered with ``@rule``
(an error) or ``@note`` (something worth saying that does not stop the job) for options that depend on each other.
Each reads only the keys it needs from the values it is given, so the command line passes all its options and a
node passes its widgets. Messages are one line naming the option, the value and the fix, in the caller's words:
``CLI`` names flags (``--cfg-scale``), ``NODE`` widget names (``cfg_scale``).

Files get the same treatment: inputs must be files (not folders), outputs must be containers this package writes,
never one of the inputs, in an existing writable folder, with room on the disk for a rough size estimate.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OptionError
from .motion.sampler import CLI_CFG_SCALE, WEB_CFG_SCALE

SEED_MAX = 2**64 - 1
VIDEO_EXTS = (".mp4", ".m4v", ".mov")  # what the mp4 muxer writes and players open under these names
MOTION_EXTS = (".safetensors",)
TEMPLATE_EXTS = (".pkl",)  # LivePortrait driving templates
PREVIEW_EXTS = (".png",)
MOTION_SOURCE_FLAGS = {"speech": "audio", "video": "motion_from_video", "motion": "motion"}
BYTES_PER_PIXEL_AT_CRF18 = 0.3  # H.264 talking heads stay well below this; doubles every 6 crf steps down
DISK_MARGIN_BYTES = 16 * 2**20
MIN_SPEECH_SECONDS = 0.25


@dataclass(frozen=True)
class Words:
    """How a message names an option: the command line's flags or a node's widget names."""

    flags: bool

    def name(self, key: str) -> str:
        return "--" + key.replace("_", "-") if self.flags else key

    def value(self, key: str, value: Any) -> str:
        return f"{self.name(key)} {value}"


CLI = Words(flags=True)
NODE = Words(flags=False)


@dataclass(frozen=True)
class Range:
    """Inclusive bounds of a number option (``None``: unbounded) and what the number means."""

    lo: float | None
    hi: float | None
    meaning: str
    integer: bool = False


RANGES: dict[str, Range] = {
    "seed": Range(0, SEED_MAX, "a seed is a whole number from 0 to 2^64-1 (a negative one is not wrapped to "
                  "another seed)", integer=True),
    "crf": Range(0, 51, "x264's quality scale runs from 0 (lossless) to 51 (worst); the reference uses 18",
                 integer=True),
    "cfg_scale": Range(0.0, None, f"the guidance scale is 0 (no audio guidance) or more; {WEB_CFG_SCALE} web, "
                       f"{CLI_CFG_SCALE} command line"),
    "steps": Range(1, None, "diffusion steps", integer=True),
    "batch_size": Range(1, None, "frames per network pass", integer=True),
    "face_index": Range(0, None, "0 is the first face in the face order", integer=True),
    "blink_rate": Range(0.0, 120.0, "blinks per minute (people blink 15-20 times a minute)"),
}

Check = Callable[[Mapping[str, Any], Words], "str | None"]
RULES: list[Check] = []
NOTES: list[Check] = []


def rule(fn: Check) -> Check:
    """Register an error check: it returns the one-line message, or None when the values are fine."""
    RULES.append(fn)
    return fn


def note(fn: Check) -> Check:
    """Register a note: printed, the job goes on."""
    NOTES.append(fn)
    return fn


def _bounds(r: Range) -> str:
    if r.hi is None:
        return f"{r.lo} or more"
    return f"{r.lo} to {r.hi}"


def range_problem(key: str, value: Any, words: Words) -> str | None:
    """The message for a number outside its ``RANGES`` row, else None."""
    r = RANGES[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (r.integer and not float(value).is_integer()):
        return f"{words.value(key, value)}: not a {'whole ' if r.integer else ''}number; {r.meaning}."
    if not math.isfinite(value) or (r.lo is not None and value < r.lo) or (r.hi is not None and value > r.hi):
        return f"{words.value(key, value)}: out of range; {r.meaning}. Use {_bounds(r)}."
    return None


@rule
def _sampler_steps(v: Mapping[str, Any], words: Words) -> str | None:
    steps, sampler = v.get("steps"), v.get("sampler")
    if steps is None or sampler is None:
        return None
    if sampler == "ddpm":
        if words.flags:
            return (f"--steps {steps}: the ddpm sampler always runs all of the checkpoint's steps (50 for the released "
                    f"model); add --sampler ddim to run {steps} steps, or drop --steps.")
        return None  # the node's steps widget only applies to ddim
    total = v.get("checkpoint_steps")
    if total is not None and steps > total:
        fix = "drop --steps" if words.flags else "lower steps"
        return (f"{words.value('steps', steps)}: the motion checkpoint was trained with {total} diffusion steps, "
                f"ddim can run at most that many; {fix} (or use {total}).")
    return None


@rule
def _speech_or_motion(v: Mapping[str, Any], words: Words) -> str | None:
    if (words.flags and "audio" in v and "motion" in v and v["audio"] is None and v["motion"] is None
            and v.get("motion_from_video") is None):
        return ("--audio missing: give the speech to animate, --motion with a saved motion to reuse, or "
                "--motion-from-video with a driving video.")
    return None


def expression_source(v: Mapping[str, Any]) -> str:
    """The command line's rule: the expression comes from --motion, else the speech, else the driving video."""
    return "motion" if v.get("motion") else "speech" if v.get("audio") else "video"


@rule
def _motion_sources(v: Mapping[str, Any], words: Words) -> str | None:
    if not words.flags:
        return None
    used = {expression_source(v)}
    for part in ("head", "lips"):
        source = v.get(f"{part}_from")
        if source is None:
            continue
        used.add(source)
        flag = MOTION_SOURCE_FLAGS[source]
        if v.get(flag) is None:
            return f"--{part}-from {source}: needs {words.name(flag)}; give it, or drop --{part}-from."
    if v.get("motion_from_video") is not None and "video" not in used:
        return ("--motion-from-video: nothing takes from the video; add --head-from video or --lips-from video, or "
                "drop --audio / --motion to drive the portrait with the video alone.")
    return None


@rule
def _box(v: Mapping[str, Any], words: Words) -> str | None:
    box = v.get("box")
    if box is None:
        return None
    if len(box) != 4 or not all(math.isfinite(float(b)) for b in box):
        return (f"{words.name('box')} {','.join(f'{b:g}' for b in box)}: give four numbers x,y,w,h (the face's box "
                "in image pixels).")
    x, y, w, h = (float(b) for b in box)
    shown = f"{words.name('box')} {','.join(f'{b:g}' for b in box)}"
    if w <= 0 or h <= 0 or x + w <= 0 or y + h <= 0:
        return (f"{shown}: the box is empty or left of/above the image; give x,y of its top-left corner and a "
                "positive width and height.")
    size = v.get("image_size")
    if size is not None and (x >= size[0] or y >= size[1]):
        return f"{shown}: the box is outside the {size[0]}x{size[1]} image; give x,y,w,h of the face inside it."
    return None


@note
def _fp16_on_cpu(v: Mapping[str, Any], words: Words) -> str | None:
    if v.get("dtype") == "fp16" and v.get("device_type") == "cpu":
        return (f"{words.value('dtype', 'fp16')} on a CPU runs slower than fp32 (CPUs emulate half precision); "
                f"{words.value('dtype', 'fp32')} is faster there.")
    return None


def option_problem(values: Mapping[str, Any], words: Words = NODE) -> str | None:
    """The first problem of ``values`` as one line, or None. ``None`` values (not given, or a linked node input)
    are not checked."""
    for key in RANGES:
        value = values.get(key)
        if value is not None:
            problem = range_problem(key, value, words)
            if problem:
                return problem
    for check in RULES:
        problem = check(values, words)
        if problem:
            return problem
    return None


def check_options(values: Mapping[str, Any], words: Words = CLI) -> list[str]:
    """Raise OptionError for the first problem of ``values``; return the notes for the rest."""
    problem = option_problem(values, words)
    if problem:
        raise OptionError(problem)
    return [n for n in (check(values, words) for check in NOTES) if n]


def validate_inputs(values: Mapping[str, Any]) -> bool | str:
    """ComfyUI's ``VALIDATE_INPUTS`` answer for a node's widget values: True, or the one-line message."""
    return option_problem(values, NODE) or True


# ---------------------------------------------------------------------------------------------------------------------
# Files


def check_input_file(key: str, path: str | os.PathLike, words: Words = CLI, what: str = "file") -> Path:
    """An input that must be an existing file: a folder and a missing path get different messages."""
    p = Path(path).expanduser()
    if p.is_dir():
        return _fail(f"{words.value(key, p)}: is a folder; give the {what} inside it.")
    if not p.exists():
        return _fail(f"{words.value(key, p)}: no such file; check the path.")
    if not p.is_file():
        return _fail(f"{words.value(key, p)}: is not a regular file; give the {what} itself.")
    if not os.access(p, os.R_OK):
        return _fail(f"{words.value(key, p)}: the file is not readable (permissions).")
    return p


def _fail(message: str):
    raise OptionError(message)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


@dataclass(frozen=True)
class Output:
    """One file a job writes: the option that names it, its extensions (the first is added to a bare name)."""

    key: str
    path: str | os.PathLike | None
    exts: tuple[str, ...]
    what: str


def check_outputs(
    outputs: list[Output], inputs: Mapping[str, str | os.PathLike | None], overwrite: bool = False,
    words: Words = CLI,
) -> tuple[dict[str, Path], list[str]]:
    """Every output checked against its extensions, the inputs, the other outputs and its folder.

    Returns the paths to write (a bare name gets the default extension) and the notes. An output that is one of the
    inputs is refused even with ``overwrite``; an existing output is refused without it.
    """
    paths: dict[str, Path] = {}
    notes: list[str] = []
    ins = {k: Path(v).expanduser() for k, v in inputs.items() if v is not None}
    for out in outputs:
        if out.path is None:
            continue
        p = Path(out.path).expanduser()
        shown = words.value(out.key, p)
        if p.is_dir():
            _fail(f"{shown}: is a folder; give a file name such as {p / ('talking' + out.exts[0])}.")
        for key, q in ins.items():
            if _same_file(p, q) or p.resolve() == q.resolve():
                _fail(f"{shown}: this is the {words.name(key)} input; writing there would destroy it, choose "
                      "another name.")
        if not p.suffix:
            p = p.with_name(p.name + out.exts[0])
            notes.append(f"{shown} has no extension; writing {p}.")
        elif p.suffix.lower() not in out.exts:
            _fail(f"{shown}: {p.suffix} is not a {out.what} this tool writes; give a name ending in "
                  f"{' or '.join(out.exts)}.")
        for key, q in paths.items():
            if p.resolve() == q.resolve():
                _fail(f"{shown}: {words.name(key)} writes the same file; give each output its own name.")
        if not p.parent.is_dir():
            _fail(f"{shown}: the folder {p.parent} does not exist; create it first or choose another folder.")
        if not os.access(p.parent, os.W_OK | os.X_OK):
            _fail(f"{shown}: the folder {p.parent} is not writable; choose another folder.")
        if p.exists() and not overwrite:
            fix = "pass --overwrite to replace it" if words.flags else "choose another name"
            _fail(f"{shown}: already exists; choose another name or {fix}.")
        paths[out.key] = p
    return paths, notes


def estimate_video_bytes(n_frames: int, width: int, height: int, crf: int = 18, audio_seconds: float = 0.0) -> int:
    """A rough upper size of the mp4: H.264 bits per pixel at ``crf`` plus 128 kbit/s AAC."""
    per_pixel = BYTES_PER_PIXEL_AT_CRF18 * 2 ** ((18 - crf) / 6)
    return int(n_frames * width * height * per_pixel + audio_seconds * 16_000)


def check_free_space(key: str, path: Path, needed: int, words: Words = CLI) -> None:
    """Refuse when the disk holding ``path`` has less room than ``needed`` bytes (plus a margin)."""
    free = shutil.disk_usage(path.parent).free
    if free < needed + DISK_MARGIN_BYTES:
        _fail(f"{words.value(key, path)}: the disk has {free / 2**20:.0f} MB free and the video needs about "
              f"{(needed + DISK_MARGIN_BYTES) / 2**20:.0f} MB; free some space or write to another disk.")


def speech_notes(seconds: float, words: Words = CLI) -> list[str]:
    """Notes about the speech that do not stop the job."""
    if seconds < MIN_SPEECH_SECONDS:
        return [f"the speech is {seconds:.2f} s long (under a quarter second): the video will be a few frames and "
                "the lips will barely move."]
    return []
