"""Progress and cancellation hooks, so long loops report and stop without knowing who drives them."""

from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    """What a long-running stage calls: ComfyUI passes its ProgressBar/interrupt, the CLI passes tqdm."""

    def update(self, done: int, total: int, preview: Any = None) -> None:
        """``done`` of ``total`` steps finished; ``preview`` is the newest (H, W, 3) frame where there is one."""

    def check_cancel(self) -> None:
        """Raise (any exception) to stop the work promptly."""


class NullProgress:
    """Reports nothing and never cancels: the default for library calls and tests."""

    def update(self, done: int, total: int, preview: Any = None) -> None:
        return None

    def check_cancel(self) -> None:
        return None


def ensure_progress(progress: Progress | None) -> Progress:
    """Return ``progress`` or a silent stand-in, so stages never test for None."""
    return progress if progress is not None else NullProgress()
