"""joyvasa_core's Progress protocol on ComfyUI's progress bar, preview image and interrupt flag."""

from __future__ import annotations

import time
from typing import Any

import comfy.model_management
import comfy.utils
from PIL import Image

from ..joyvasa_core.video import to_uint8_frames

PREVIEW_INTERVAL_S = 0.3  # the newest frame goes to the UI at most about three times a second
PREVIEW_SIZE = 512  # longest side of the preview sent over the websocket


class ComfyProgress:
    """Reports to the UI's progress bar of the running node and raises ComfyUI's InterruptProcessingException when
    the user presses Cancel (POST /interrupt), so library loops stop between chunks with nothing half-written.

    A ``preview`` given with an update (an (H, W, 3) frame, uint8 or float in [0, 1]) becomes the node's live preview
    image, throttled to one every ``PREVIEW_INTERVAL_S`` seconds (the last frame always goes)."""

    def __init__(self) -> None:
        self._bar: comfy.utils.ProgressBar | None = None
        self._last_preview = float("-inf")

    def update(self, done: int, total: int, preview: Any = None) -> None:
        total = max(int(total), 1)
        if self._bar is None:
            self._bar = comfy.utils.ProgressBar(total)
        image = None
        now = time.monotonic()
        if preview is not None and (now - self._last_preview >= PREVIEW_INTERVAL_S or done >= total):
            image = ("JPEG", _pil(preview), PREVIEW_SIZE)
            self._last_preview = now
        self._bar.update_absolute(int(done), total, image)
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


def _pil(frame: Any) -> Image.Image:
    return Image.fromarray(to_uint8_frames(frame)[0])
