"""Manifest rows -> the single job's options, checked by the single job's own parser and plan.

A column is a per-job option of ``python -m joyvasa_core`` named as the command line names it (``cfg_scale``,
``cfg-scale`` or ``--cfg-scale``; ``driving_video`` for ``--motion-from-video``); a cell becomes that flag's argument,
so every value is parsed and checked exactly as on the command line. The options that load models or run the whole
batch (``--models``, ``--device``, ...) are the batch command's, not a row's. Input paths are relative to the
manifest's folder; outputs are relative to ``--out-dir`` and stay inside it.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import JoyVASAError
from .manifest import Cell, Manifest, ManifestRow

# Options of the single job that belong to the batch as a whole: they load the models or say how the batch runs.
BATCH_OPTIONS = ("help", "models", "download", "device", "dtype", "detector", "detector_range", "quiet", "overwrite")
ALIASES = {"driving_video": "motion_from_video"}
INPUTS = ("image", "audio", "motion", "motion_from_video")
OUTPUTS = ("out", "save_motion", "motion_preview", "export_template")
DRIVERS = ("audio", "motion", "motion_from_video")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class RowError(JoyVASAError):
    """One row's problem, as ``row N, column C, value V: what and the fix`` (``row`` None: the whole manifest)."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


@dataclass(frozen=True)
class Row:
    """One checked row: the single job's options (absolute paths) and the outputs it writes."""

    number: int
    options: dict[str, Any]
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.outputs["out"]

    @property
    def inputs(self) -> dict[str, Path]:
        return {k: Path(self.options[k]) for k in INPUTS if self.options.get(k)}


def column_key(name: str) -> str:
    """A column's option key: ``--cfg-scale``, ``cfg-scale`` and ``cfg_scale`` all name ``cfg_scale``."""
    key = name.strip().lstrip("-").replace("-", "_").lower()
    return ALIASES.get(key, key)


def row_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The single job's per-row options, by key."""
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest not in BATCH_OPTIONS}


def check_columns(manifest: Manifest, actions: dict[str, argparse.Action]) -> None:
    """Refuse a column that is not a per-row option, and a manifest without an image, output or motion source."""
    named: dict[str, str] = {}
    for column in manifest.columns:
        key = column_key(column)
        if key in named:
            raise RowError(f"manifest {manifest.path}: columns {named[key]!r} and {column!r} both name "
                           f"--{key.replace('_', '-')}; keep one.")
        named[key] = column
        if key == "overwrite":
            raise RowError(f"manifest {manifest.path}: column {column!r}: the batch never replaces a finished video "
                           "(a rerun skips it); move the video away to make it again.")
        if key in BATCH_OPTIONS:
            raise RowError(f"manifest {manifest.path}: column {column!r} is an option of the whole batch; give "
                           f"--{key.replace('_', '-')} to the batch command instead.")
        if key not in actions:
            raise RowError(f"manifest {manifest.path}: column {column!r} is not an option of the single job; rename "
                           "it to one of: image, audio, motion, driving_video, out, seed, cfg_scale, steps, sampler, "
                           "preset, animal, face_index, box, blinks, ... (python -m joyvasa_core --help).")
    keys = {column_key(c) for c in manifest.columns}
    for needed in ("image", "out"):
        if needed not in keys:
            raise RowError(f"manifest {manifest.path}: no {needed!r} column; every row needs image, out and one of "
                           "audio, motion, driving_video.")
    if not keys & set(DRIVERS):
        raise RowError(f"manifest {manifest.path}: no 'audio', 'motion' or 'driving_video' column; every row needs "
                       "one of them to drive the portrait.")


def _where(row: int, column: str, value: Cell) -> str:
    return f"row {row}, column {column}, value {str(value)!r}"


def _flag_args(action: argparse.Action, column: str, value: Cell, row: int) -> list[str]:
    """The command-line words of one cell."""
    flag = action.option_strings[0]
    if action.nargs == 0:  # a switch: store_true, or --x/--no-x
        text = str(value).strip().lower()
        if text not in TRUE + FALSE:
            raise RowError(f"{_where(row, column, value)}: {flag} is a switch; write true or false.", row)
        if isinstance(action, argparse.BooleanOptionalAction):
            return [flag if text in TRUE else "--no-" + flag[2:]]
        return [flag] if text in TRUE else []
    return [f"{flag}={value}"]


def _resolve(row: ManifestRow, column: str, key: str, value: Cell, manifest: Manifest, out_dir: Path,
             make_folder: Callable[[Path], None]) -> str:
    path = Path(os.path.expanduser(str(value)))
    if key in INPUTS:
        return str(path if path.is_absolute() else manifest.folder / path)
    target = (out_dir / path).resolve()
    if out_dir.resolve() not in target.parents:
        raise RowError(f"{_where(row.number, column, value)}: outputs are written inside --out-dir {out_dir}; give a "
                       "name relative to it (no '..', no other folder).", row.number)
    make_folder(target.parent)
    return str(target)


def parse_row(row: ManifestRow, manifest: Manifest, out_dir: Path, parser: argparse.ArgumentParser,
              actions: dict[str, argparse.Action], make_folder: Callable[[Path], None]) -> argparse.Namespace:
    """One row through the single job's parser: the namespace the command line would have made."""
    argv, columns = [], {}
    for column, value in row.cells.items():
        key = column_key(column)
        columns[actions[key].option_strings[0]] = (column, value)
        if key in INPUTS + OUTPUTS:
            value = _resolve(row, column, key, value, manifest, out_dir, make_folder)
        argv += _flag_args(actions[key], column, value, row.number)
    given = {column_key(c) for c in row.cells}
    for key, what in (("image", "the portrait (e.g. portrait.png)"), ("out", "the video's name (e.g. clip.mp4)")):
        if key not in given:
            raise RowError(f"row {row.number}, column {key}: empty; give {what}.", row.number)

    def error(message: str):
        m = re.match(r"argument ([-\w]+)(?:/[-\w]+)?: (.*)", message)
        if m and m.group(1) in columns:
            column, value = columns[m.group(1)]
            raise RowError(f"{_where(row.number, column, value)}: {m.group(2)}.", row.number)
        raise RowError(f"row {row.number}: {message}.", row.number)

    parser.error = error  # type: ignore[method-assign]
    return parser.parse_args(argv)


def check_rows(rows: list[Row], inputs: Callable[[Row], dict[str, Path]] = lambda r: r.inputs) -> list[RowError]:
    """Refuse two rows writing one file and an output that is another row's input."""
    problems = []
    written: dict[Path, int] = {}
    read = {p.resolve(): r.number for r in rows for p in inputs(r).values()}
    for r in rows:
        for key, p in r.outputs.items():
            target = p.resolve()
            if target in written:
                problems.append(RowError(f"row {r.number}, column {key}, value {str(p)!r}: row {written[target]} "
                                         "writes the same file; give each row its own output name.", r.number))
            elif target in read and read[target] != r.number:
                problems.append(RowError(f"row {r.number}, column {key}, value {str(p)!r}: it is an input of row "
                                         f"{read[target]}; writing it would destroy that input, choose another name.",
                                         r.number))
            written.setdefault(target, r.number)
    return problems


def check_row(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    """One row through the single job's own checks (``plan_job`` then ``check_job``: options, files, room on the
    disk), before any model loads. Returns its values with the seed fixed (a row without one takes its speech's
    ``file_seed``) and the outputs it writes. An existing output is not an error here: the batch skips that row."""
    from ..job import check_job, plan_job
    from .keys import file_seed

    audio = values.get("audio")
    plan = plan_job({**values, "overwrite": True}, draw_seed=lambda: file_seed(audio) if audio else 0)
    outputs = check_job(plan).outputs  # a name without extension has gained .mp4 (or its kind's own)
    return {**values, "seed": plan.seed, **{k: str(p) for k, p in outputs.items()}}, outputs


def _parsed(manifest: Manifest, out_dir: Path, parser: argparse.ArgumentParser, shared: dict[str, Any],
            make_folder: Callable[[Path], None]) -> tuple[list[Row], list[RowError]]:
    """Every row through the single job's parser, with its outputs as named."""
    actions = row_actions(parser)
    check_columns(manifest, actions)
    rows, problems = [], []
    for mrow in manifest.rows:
        try:
            ns = parse_row(mrow, manifest, out_dir, parser, actions, make_folder)
        except RowError as exc:
            problems.append(exc)
            continue
        if not any(getattr(ns, k, None) for k in DRIVERS):
            problems.append(RowError(f"row {mrow.number}: no audio, motion or driving_video; give the speech (or a "
                                     "motion) that drives the portrait.", mrow.number))
            continue
        options = {**{k: v for k, v in vars(ns).items() if k not in BATCH_OPTIONS}, **shared}
        rows.append(Row(mrow.number, options, {k: Path(options[k]) for k in OUTPUTS if options.get(k)}))
    return rows, problems


def _named(number: int, message: str) -> RowError:
    """The single job's message (``--crf 99: ...``) with the row and the column it came from."""
    m = re.match(r"--([a-z][-a-z]*)", message)
    column = f", column {m.group(1).replace('-', '_')}" if m else ""
    return RowError(f"row {number}{column}: {message}", number)


def plan_rows(manifest: Manifest, out_dir: Path, parser: argparse.ArgumentParser, shared: dict[str, Any],
              make_folder: Callable[[Path], None]) -> tuple[list[Row], list[RowError]]:
    """Every row checked as the single job checks its options, and against the other rows: the good rows, and one
    error per bad row. ``shared`` holds the batch's options every row takes (``--models``, ``--device``, ...);
    ``make_folder`` creates an output's folder inside ``out_dir`` (the caller removes them if it gives up)."""
    parsed, problems = _parsed(manifest, out_dir, parser, shared, make_folder)
    clashes = check_rows(parsed)
    problems += clashes
    refused = {p.row for p in clashes}
    rows = []
    for row in parsed:
        if row.number in refused:
            continue
        try:
            values, outputs = check_row(row.options)
        except JoyVASAError as exc:
            problems.append(_named(row.number, exc.for_cli()))
            continue
        rows.append(Row(row.number, values, outputs))
    return rows, sorted(problems, key=lambda p: p.row or 0)
