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
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OptionError

SEED_MAX = 2**64 - 1
WEB_CFG_SCALE = 4.0  # the reference web demo's guidance (its published results, humans and animals)
CLI_CFG_SCALE = 2.8  # the reference command line's
VIDEO_EXTS = (".mp4", ".m4v", ".mov")  # what the mp4 muxer writes and players open under these names
MOTION_EXTS = (".safetensors",)
TEMPLATE_EXTS = (".pkl",)  # LivePortrait driving templates
PREVIEW_EXTS = (".png",)
MOTION_SOURCE_FLAGS = {"speech": "audio", "video": "motion_from_video", "motion": "motion"}
BYTES_PER_PIXEL_AT_CRF18 = 0.3  # H.264 talking heads stay well below this; doubles every 6 crf steps down
DISK_MARGIN_BYTES = 16 * 2**20
MIN_SPEECH_SECONDS = 0.25
FPS = 25  # the motion generator's frame rate
MAX_SECONDS = 3600  # the longest motion or video a job makes: an hour
MAX_FRAMES = MAX_SECONDS * FPS
MOTION_BYTES_PER_FRAME = 640  # 160 float32 per frame in a motion .safetensors (coef, pose, exp, R, t...)
TEMPLATE_BYTES_PER_FRAME = 2048  # a driving template's per-frame dict of numpy arrays, pickled
NAME_MAX_FALLBACK = 255
PATH_MAX = 4096  # Linux's limit on a whole path
PID_FOR_NAMES = 2**22  # the largest Linux pid: the longest partial-file name this process family can make
SHOWN_PATH_CHARS = 160  # longer paths are shown as their start and end
MOST_OF_BOX = 0.5  # a box with less than this share of its area on the photo is refused, more is clipped


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
    "cfg_scale": Range(0.0, 20.0, f"the audio guidance scale; the model was made for {CLI_CFG_SCALE} (reference "
                       f"command line) to {WEB_CFG_SCALE} (web demo), 0 is no guidance, and far above 20 the guided "
                       "motion leaves anything the model saw in training (at 1e30 it is NaN)"),
    "steps": Range(1, 1000, "diffusion steps (ddim runs at most the checkpoint's, 50 for the released model)",
                   integer=True),
    "batch_size": Range(1, 512, "frames per network pass", integer=True),
    "face_index": Range(0, 63, "0 is the first face in the face order", integer=True),
    "blink_rate": Range(0.0, 120.0, "blinks per minute (people blink 15-20 times a minute)"),
    "blink_duration": Range(0.04, 2.0, "seconds from open to closed to open (a blink takes about 0.25 s)"),
    "openness": Range(0.0, 2.0, "eye opening between blinks, 1 = the portrait's own"),
    "smoothing_alpha": Range(0.001, 1.0, "the EMA weight of the new frame (the reference uses 0.01)"),
    "multiplier": Range(0.0, 5.0, "a multiplier of the part's movement from frame 0: 0 holds it still, 1 keeps it"),
    "pose_offset": Range(-90.0, 90.0, "a constant head turn in degrees (past 90 the face turns away)"),
    "driving_multiplier": Range(0.0, 4.0, "the strength of the driving expression (0 = the preset's)"),
    "length": Range(0, MAX_FRAMES, f"frames of motion, at most an hour ({MAX_FRAMES} frames at {FPS} fps)",
                    integer=True),
    "box_side": Range(0, 16384, "box edges and sizes are image pixels", integer=True),
    "lookahead": Range(0, 100, "frames of speech (40 ms each) a live step waits for past the frames it finishes; a "
                       "step never reads past its window (100 frames for the released model)", integer=True),
    "step_frames": Range(1, 100, "frames a live step finishes, at most a window (100 frames)", integer=True),
    "chunk_ms": Range(1.0, 10000.0, "milliseconds of speech per push (a microphone page sends 10-200)"),
    "port": Range(1, 65535, "a TCP port", integer=True),
    "max_sessions": Range(1, 64, "viewers served at once, each with its own session and worker thread",
                          integer=True),
    "workers": Range(1, 1024, "Ray actors that run a batch's rows at once", integer=True),
    "cpus_per_worker": Range(1, 1024, "CPUs each Ray actor holds on a cluster without GPUs", integer=True),
    "retries": Range(0, 100, "times a row is tried again on another actor after its actor died", integer=True),
}

ROWS = {  # option names that share a row of RANGES
    "head_rotation": "multiplier", "translation": "multiplier", "scale": "multiplier", "expression": "multiplier",
    "lips": "multiplier", "pitch": "pose_offset", "yaw": "pose_offset", "roll": "pose_offset",
    "rate": "blink_rate", "duration": "blink_duration", "start": "length", "stop": "length", "frames": "length",
    "box_x": "box_side", "box_y": "box_side", "box_w": "box_side", "box_h": "box_side",
}


def bounds(row: str) -> dict[str, float]:
    """A widget's ``min``/``max`` from a row of ``RANGES``, so the UI offers exactly what the checks accept."""
    r = RANGES[row]
    return {k: v for k, v in (("min", r.lo), ("max", r.hi)) if v is not None}


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


def range_problem(key: str, value: Any, words: Words, row: str | None = None) -> str | None:
    """The message for a number outside its ``RANGES`` row (``row``, default the row named ``key``), else None."""
    r = RANGES[row or key]
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


def box_on_image(box: tuple[float, float, float, float], width: int, height: int) -> tuple[tuple[float, ...], float]:
    """``box`` (x0, y0, x1, y1) clipped to a ``width`` x ``height`` image, and the share of its area that was on it."""
    x0, y0, x1, y1 = box
    area = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
    inside = max(cx1 - cx0, 0.0) * max(cy1 - cy0, 0.0)
    return (cx0, cy0, cx1, cy1), (inside / area if area > 0 else 0.0)


def box_problem(box: tuple[float, float, float, float], width: int, height: int) -> tuple[str | None, str | None]:
    """(refusal, note) for a user box (x0, y0, x1, y1) on the image: refused when most of it lies outside, else a
    note when it is clipped. The messages follow ``what: ...`` and say x,y,w,h."""
    clipped, share = box_on_image(box, width, height)
    if share < MOST_OF_BOX:
        return (f"the box lies mostly outside the {width}x{height} image ({share:.0%} of it is on it); give x,y,w,h "
                "of the face inside it.", None)
    if share < 1.0:
        x0, y0, x1, y1 = clipped
        return None, (f"the box was clipped to the {width}x{height} image: {x0:g},{y0:g},{x1 - x0:g},{y1 - y0:g} "
                      f"({share:.0%} of it was on the image)")
    return None, None


@rule
def _box(v: Mapping[str, Any], words: Words) -> str | None:
    box = v.get("box")
    if box is None:
        return None
    shown = f"{words.name('box')} {','.join(f'{b:g}' for b in box)}"
    if len(box) != 4 or not all(math.isfinite(float(b)) for b in box):
        return f"{shown}: give four finite numbers x,y,w,h (the face's box in image pixels)."
    x, y, w, h = (float(b) for b in box)
    if w <= 0 or h <= 0 or x + w <= 0 or y + h <= 0:
        return (f"{shown}: the box is empty or left of/above the image; give x,y of its top-left corner and a "
                "positive width and height.")
    size = v.get("image_size")
    if size is not None:
        refusal, _ = box_problem((x, y, x + w, y + h), size[0], size[1])
        return None if refusal is None else f"{shown}: {refusal}"
    return None


@note
def _fp16_on_cpu(v: Mapping[str, Any], words: Words) -> str | None:
    if v.get("dtype") == "fp16" and v.get("device_type") == "cpu":
        return (f"{words.value('dtype', 'fp16')} on a CPU runs slower than fp32 (CPUs emulate half precision); "
                f"{words.value('dtype', 'fp32')} is faster there.")
    return None


def number_problem(values: Mapping[str, Any], words: Words = NODE, rows: Mapping[str, str] | None = None) -> str | None:
    """The first number of ``values`` outside its row of ``RANGES`` (keys of RANGES, or mapped by ``rows``)."""
    rows = rows or {}
    for key, value in values.items():
        row = rows.get(key, key)
        if value is not None and row in RANGES:
            problem = range_problem(key, value, words, row)
            if problem:
                return problem
    return None


def option_problem(values: Mapping[str, Any], words: Words = NODE, rows: Mapping[str, str] | None = None) -> str | None:
    """The first problem of ``values`` as one line, or None: the numbers against ``RANGES`` (``rows`` maps other
    names to its rows, e.g. ``ROWS``), then the rules. ``None`` values (not given, or a linked node input) are not
    checked. The batch manifest and the live session call this with their option names, as the nodes do."""
    problem = number_problem(values, words, rows)
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


def validate_inputs(values: Mapping[str, Any], rows: Mapping[str, str] | None = None) -> bool | str:
    """ComfyUI's ``VALIDATE_INPUTS`` answer for a node's widget values: True, or the one-line message. A hook that
    takes a number switches off ComfyUI's own min/max check for it, so this does the range check itself."""
    return option_problem(values, NODE, rows) or True


def require_numbers(values: Mapping[str, Any], rows: Mapping[str, str] | None = None) -> None:
    """For the core's entry points (sampler, edits, blinks): OptionError in node words, with the command line's."""
    problem = number_problem(values, NODE, rows)
    if problem:
        raise OptionError(problem, cli=number_problem(values, CLI, rows))


def frames_problem(n_frames: int, what: str) -> str | None:
    """The message for work longer than ``MAX_FRAMES`` (an hour at 25 fps), with the number, else None."""
    if n_frames <= MAX_FRAMES:
        return None
    return (f"{what} is {n_frames} frames ({n_frames / FPS / 3600:.1f} hours at {FPS} fps); the limit is an hour "
            f"({MAX_FRAMES} frames): cut it into parts.")


def check_frames(n_frames: int, what: str) -> None:
    """Refuse a motion or video longer than an hour before any of it is made."""
    problem = frames_problem(n_frames, what)
    if problem:
        raise OptionError(problem)


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


def check_input_folder(key: str, path: str | os.PathLike, words: Words = CLI, what: str = "folder") -> Path:
    """An input that must be a folder when it exists (``--models`` naming a file is not "no such folder")."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        return _fail(f"{words.value(key, p)}: is a file, not a folder; give the {what}.")
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


def short_path(path: str | os.PathLike, limit: int = SHOWN_PATH_CHARS) -> str:
    """``path`` for a message: whole when short, else its start and end around an ellipsis."""
    text = str(path)
    if len(text) <= limit:
        return text
    head = limit // 3
    return f"{text[:head]}...{text[-(limit - head - 3):]}"


def name_limit(folder: Path) -> int:
    """The longest file name (bytes) ``folder``'s file system takes."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return NAME_MAX_FALLBACK


def name_problem(path: Path) -> str | None:
    """Why ``path`` (or the partial file it is first written under) cannot be created for its length, else None."""
    from .partials import partial_path

    limit = name_limit(path.parent)
    name, partial = len(os.fsencode(path.name)), len(os.fsencode(partial_path(path, PID_FOR_NAMES).name))
    if max(name, partial) > limit:
        return (f"the file name is {name} bytes and the folder takes names of at most {limit} (the partial file it "
                f"is written under adds {partial - name}); choose a shorter name.")
    if len(os.fsencode(os.path.abspath(partial_path(path, PID_FOR_NAMES)))) >= PATH_MAX:
        return f"the path is longer than the {PATH_MAX} bytes the system allows; choose a shorter name or folder."
    return None


def file_kind(path: Path) -> str | None:
    """What an existing ``path`` is when it is not a regular file ("a folder", "a device"...), else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
             (stat.S_ISFIFO, "a fifo (named pipe)"), (stat.S_ISSOCK, "a socket"))
    return next((what for test, what in kinds if test(mode)), None)


def kind_problem(path: Path) -> str | None:
    """Why an existing ``path`` cannot be an output (a folder, a device, a fifo, a socket), else None."""
    kind = file_kind(path)
    return None if kind is None else f"is {kind}, not a regular file; outputs are only written to files"


def _named(out: Output, words: Words) -> Path:
    """The path an output is written to (a bare name gets the first extension), its name checked first: a long
    name must not reach a call that raises ENAMETOOLONG."""
    p = Path(out.path).expanduser()
    shown = words.value(out.key, short_path(p))
    final = p if p.suffix else p.with_name(p.name + out.exts[0])
    problem = name_problem(final)
    if problem:
        _fail(f"{shown}: {problem}")
    kind = file_kind(p)
    if kind == "a folder":
        _fail(f"{shown}: is a folder; give a file name such as {short_path(p / ('talking' + out.exts[0]))}.")
    if kind:
        _fail(f"{shown}: is {kind}, not a regular file; give a file name such as talking{out.exts[0]}.")
    return p


def check_outputs(
    outputs: list[Output], inputs: Mapping[str, str | os.PathLike | None], overwrite: bool = False,
    words: Words = CLI,
) -> tuple[dict[str, Path], list[str]]:
    """Every output checked against its extensions, the inputs, the other outputs and its folder.

    Returns the paths to write (a bare name gets the default extension) and the notes. An output that is one of the
    inputs is refused even with ``overwrite``; an existing output is refused without it, and one that is not a
    regular file (a device such as /dev/full, a fifo, a folder) always.
    """
    paths: dict[str, Path] = {}
    notes: list[str] = []
    ins = {k: Path(v).expanduser() for k, v in inputs.items() if v is not None}
    for out in outputs:
        if out.path is None:
            continue
        p = _named(out, words)
        shown = words.value(out.key, short_path(p))
        for key, q in ins.items():
            if _same_file(p, q) or p.resolve() == q.resolve():
                _fail(f"{shown}: this is the {words.name(key)} input; writing there would destroy it, choose "
                      "another name.")
        if not p.suffix:
            p = p.with_name(p.name + out.exts[0])
            notes.append(f"{shown} has no extension; writing {short_path(p)}.")
            kind = kind_problem(p)
            if kind:
                _fail(f"{words.value(out.key, short_path(p))}: {kind}; choose another name.")
        elif p.suffix.lower() not in out.exts:
            _fail(f"{shown}: {p.suffix} is not a {out.what} this tool writes; give a name ending in "
                  f"{' or '.join(out.exts)}.")
        for key, q in paths.items():
            if p.resolve() == q.resolve():
                _fail(f"{shown}: {words.name(key)} writes the same file; give each output its own name.")
        if not p.parent.is_dir():
            _fail(f"{shown}: the folder {short_path(p.parent)} does not exist; create it first or choose another "
                  "folder.")
        if not os.access(p.parent, os.W_OK | os.X_OK):
            _fail(f"{shown}: the folder {short_path(p.parent)} is not writable; choose another folder.")
        if p.exists() and not overwrite:
            fix = "pass --overwrite to replace it" if words.flags else "choose another name"
            _fail(f"{shown}: already exists; choose another name or {fix}.")
        paths[out.key] = p
    return paths, notes


def output_prefix(prefix: str, default: str) -> str:
    """A node's ``filename_prefix``: empty (or only a folder, ``joyvasa/``) gets the node's default name, so no
    file is ever named ``._00001_.mp4`` (hidden, nameless)."""
    prefix = prefix.strip()
    if not prefix:
        return default
    if prefix.endswith(("/", "\\")):
        return prefix + Path(default).name
    return prefix


def check_output_name(key: str, path: Path, words: Words = NODE) -> None:
    """A file a node is about to write: its name's length (partial file included) and what already lies there."""
    problem = name_problem(path) or kind_problem(path)
    if problem:
        _fail(f"{words.value(key, short_path(path))}: {problem}")


def estimate_video_bytes(n_frames: int, width: int, height: int, crf: int = 18, audio_seconds: float = 0.0) -> int:
    """A rough upper size of the mp4: H.264 bits per pixel at ``crf`` plus 128 kbit/s AAC."""
    per_pixel = BYTES_PER_PIXEL_AT_CRF18 * 2 ** ((18 - crf) / 6)
    return int(n_frames * width * height * per_pixel + audio_seconds * 16_000)


def estimate_motion_bytes(n_frames: int, template: bool = False) -> int:
    """The size of a motion file (.safetensors) or driving template (.pkl) of ``n_frames``."""
    return n_frames * (TEMPLATE_BYTES_PER_FRAME if template else MOTION_BYTES_PER_FRAME) + 4096


def check_free_space(key: str, path: Path, needed: int, words: Words = CLI, what: str = "the video") -> None:
    """Refuse when the disk holding ``path`` has less room than ``needed`` bytes (plus a margin), before writing."""
    free = shutil.disk_usage(path.parent).free
    if free < needed + DISK_MARGIN_BYTES:
        _fail(f"{words.value(key, short_path(path))}: the disk has {free / 2**20:.0f} MB free and {what} needs about "
              f"{(needed + DISK_MARGIN_BYTES) / 2**20:.0f} MB; free some space or write to another disk.")


def speech_notes(seconds: float, words: Words = CLI) -> list[str]:
    """Notes about the speech that do not stop the job."""
    if seconds < MIN_SPEECH_SECONDS:
        return [f"the speech is {seconds:.2f} s long (under a quarter second): the video will be a few frames and "
                "the lips will barely move."]
    return []
