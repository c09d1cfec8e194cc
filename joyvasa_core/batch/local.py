"""The batch in this process: one ``Worker`` (models loaded once) runs the rows in manifest order, each writing its
video under its final name only when complete."""

from __future__ import annotations

from collections.abc import Callable

from .report import RowResult
from .rows import Row
from .worker import Worker


def run_local(rows: list[Row], finished: Callable[[RowResult], None], worker: Worker | None = None) -> Worker:
    """Run ``rows``, calling ``finished`` with each result as it ends; returns the worker (its counts)."""
    worker = worker or Worker()
    for row in rows:
        result, _, _ = worker.run(row.number, row.options)
        finished(result)
    return worker
