"""The batch report and what a rerun skips.

The report is JSON Lines beside the outputs (``<manifest>.report.jsonl`` in ``--out-dir``), one object per row, each
appended and flushed as its row ends, so a batch killed at any moment still says what it finished. A rerun starts a
fresh report. Resume needs no bookkeeping of its own: a final name only ever holds a complete video (the
partial-file rule), so a row whose output exists is done and is reported ``skipped``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DONE, FAILED, SKIPPED, INVALID = "done", "failed", "skipped", "invalid"


@dataclass
class RowResult:
    """One row's outcome: ``seconds`` the time it took here, ``duration`` the video's length."""

    row: int
    status: str
    out: str | None = None
    frames: int | None = None
    duration: float | None = None
    seconds: float | None = None
    error: str | None = None
    motion: str | None = None  # "sampled" or "reused"
    portrait: str | None = None  # "prepared" or "reused"
    worker: str | None = None
    seed: int | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.status in (DONE, SKIPPED)

    def line(self) -> str:
        """The row's line on the terminal."""
        if self.status == DONE:
            return f"row {self.row}: wrote {self.out} ({self.frames} frames, {self.seconds:.1f} s)"
        if self.status == SKIPPED:
            return f"row {self.row}: {self.out} is already complete, skipped"
        return f"row {self.row}: {self.status}: {self.error}"


def report_path(out_dir: Path, manifest: Path) -> Path:
    return out_dir / f"{manifest.stem}.report.jsonl"


class Report:
    """Appends one JSON object per row; each line is on disk when ``add`` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - held for the batch, closed by close()
        self.results: list[RowResult] = []

    def add(self, result: RowResult) -> None:
        self.results.append(result)
        self.file.write(json.dumps({k: v for k, v in asdict(result).items() if v is not None}) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Report:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def video_facts(path: Path) -> tuple[int, float]:
    """(frames, seconds) of a finished mp4, read from its container."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = stream.frames or sum(1 for _ in container.demux(stream) if _.size)
        rate = float(stream.average_rate or 25)
    return frames, frames / rate


def skipped(row: int, out: Path) -> RowResult | None:
    """The result of a row whose output is already complete, else None (the row must run). A file under that name
    that is not a readable video is never replaced: the row fails and says so."""
    if not out.exists():
        return None
    try:
        frames, duration = video_facts(out)
    except (OSError, IndexError, ValueError) as exc:
        return RowResult(row=row, status=FAILED, out=str(out), error=f"{out} exists but is not a video this batch can "
                         f"read ({type(exc).__name__}); move it away and run again to make the row's video.")
    return RowResult(row=row, status=SKIPPED, out=str(out), frames=frames, duration=round(duration, 3), seconds=0.0)
