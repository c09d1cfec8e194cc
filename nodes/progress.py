"""joyvasa_core's Progress protocol on ComfyUI's progress bar and interrupt flag."""

from __future__ import annotations

from typing import Any

import comfy.model_management
import comfy.utils


class ComfyProgress:
    """Reports to the UI's progress bar of the running node and raises ComfyUI's InterruptProcessingException when
    the user presses Cancel (POST /interrupt), so library loops stop between chunks with nothing half-written."""

    def __init__(self) -> None:
        self._bar: comfy.utils.ProgressBar | None = None

    def update(self, done: int, total: int, preview: Any = None) -> None:
        total = max(int(total), 1)
        if self._bar is None:
            self._bar = comfy.utils.ProgressBar(total)
        self._bar.update_absolute(int(done), total, preview)
        self.check_cancel()

    def check_cancel(self) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()


class ComfyDownloadProgress:
    """Bytes of each downloaded file on the running node's progress bar (one bar per file); Cancel stops the
    download between chunks."""

    def __init__(self) -> None:
        self._bars: dict[str, comfy.utils.ProgressBar] = {}

    def __call__(self, file: Any, done: int, total: int) -> None:
        total = max(int(total), 1)
        bar = self._bars.get(file.target)
        if bar is None:
            bar = self._bars[file.target] = comfy.utils.ProgressBar(total)
        bar.update_absolute(int(done), total)
        comfy.model_management.throw_exception_if_processing_interrupted()
