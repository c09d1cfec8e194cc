"""Reading a batch manifest: CSV with a header row, or JSON Lines (one object per line), UTF-8 text.

A reader returns the cells as written (strings, or JSON's numbers and booleans), with their row numbers; what the
cells mean is decided by ``rows``. Every problem with the file itself is one ``OptionError`` line naming the file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OptionError

CSV_EXTS = (".csv",)
JSONL_EXTS = (".jsonl", ".ndjson", ".json")
Cell = str | int | float | bool


@dataclass(frozen=True)
class ManifestRow:
    """One video: its 1-based row number and its non-empty cells, column name -> value."""

    number: int
    cells: dict[str, Cell]


@dataclass(frozen=True)
class Manifest:
    """The rows of one manifest file, the columns it declares and the folder relative paths start from."""

    path: Path
    columns: tuple[str, ...]
    rows: tuple[ManifestRow, ...]

    @property
    def folder(self) -> Path:
        return self.path.parent


def _fail(path: Path, message: str):
    raise OptionError(f"manifest {path}: {message}")


def _text(path: Path) -> str:
    """The file's text, refusing folders, missing files and anything that is not UTF-8."""
    if path.is_dir():
        _fail(path, "is a folder; give the .csv or .jsonl file inside it.")
    if not path.is_file():
        _fail(path, "no such file; check the path.")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        _fail(path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8 "
                    "(in a spreadsheet: CSV UTF-8).")
    raise AssertionError("unreachable")


def _read_csv(path: Path, text: str) -> tuple[tuple[str, ...], list[ManifestRow]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        _fail(path, "is empty; give a header row (image,audio,out,...) and one row per video.")
    columns = tuple(h.strip() for h in header)
    if "" in columns:
        _fail(path, f"column {columns.index('') + 1} of the header has no name; name it or delete it.")
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        _fail(path, f"column {twice[0]!r} appears twice in the header; keep one.")
    rows = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue  # blank lines, and spreadsheets' trailing empty rows
        number = len(rows) + 1
        if len(values) > len(columns):
            _fail(path, f"row {number} has {len(values)} cells for {len(columns)} columns; quote values holding "
                        "commas.")
        cells = {c: v.strip() for c, v in zip(columns, values, strict=False) if v.strip()}
        rows.append(ManifestRow(number, cells))
    return columns, rows


def _json_cell(path: Path, number: int, key: str, value: Any) -> Cell | None:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value.strip() if isinstance(value, str) else value
    _fail(path, f"row {number}, {key!r}: {json.dumps(value)[:40]} is not a string, number or true/false; give one "
                "value per option.")
    raise AssertionError("unreachable")


def _read_jsonl(path: Path, text: str) -> tuple[tuple[str, ...], list[ManifestRow]]:
    columns: dict[str, None] = {}
    rows = []
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        number = len(rows) + 1
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            _fail(path, f"line {line_no} is not JSON ({exc.msg}); write one object per line.")
        if not isinstance(obj, dict):
            _fail(path, f"line {line_no} is not a JSON object; write one {{\"image\": ..., \"out\": ...}} per line.")
        cells = {}
        for key, value in obj.items():
            columns.setdefault(key)
            cell = _json_cell(path, number, key, value)
            if cell is not None and cell != "":
                cells[key] = cell
        rows.append(ManifestRow(number, cells))
    return tuple(columns), rows


def read_manifest(path: str | os.PathLike) -> Manifest:
    """The manifest's rows; refuses folders, missing files, other formats, non-UTF-8 text and empty manifests."""
    p = Path(path).expanduser().absolute()
    if p.suffix.lower() not in CSV_EXTS + JSONL_EXTS:
        _fail(p, f"{p.suffix or 'no extension'} is not a manifest format; give a .csv (header row) or .jsonl "
                 "(one JSON object per line) file.")
    text = _text(p)
    columns, rows = (_read_csv if p.suffix.lower() in CSV_EXTS else _read_jsonl)(p, text)
    if not rows:
        _fail(p, "has no rows; add one row per video (image, audio, out, ...).")
    return Manifest(path=p, columns=columns, rows=tuple(rows))
