"""The batch in this process: one ``Worker`` (models loaded once) runs the rows in manifest order, each writing its
video under its final name only when complete."""

from __future__ import annotations

from collections.abc import Callable

from .report import RowResult
from .rows import Row
from .worker import Worker


def run_local(rows: list[Row], finished: Callable[[RowResult], None]) -> None:
    """Run ``rows`` in order on one worker, calling ``finished`` with each result as it ends."""
    worker = Worker()
    for row in rows:
        result, _, _ = worker.run(row.number, row.options)
        finished(result)
