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


class TqdmProgress:
    """The ``Progress`` protocol on a tqdm bar (made on the first update, when the total is known; tqdm is imported
    only then, so the library does not need it)."""

    def __init__(self, desc: str, enabled: bool = True) -> None:
        self.desc = desc
        self.enabled = enabled
        self.bar = None

    def update(self, done: int, total: int, preview: Any = None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="step" if "motion" in self.desc else "frame",
                            dynamic_ncols=True, leave=True)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def check_cancel(self) -> None:
        return None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class TqdmFileProgress:
    """One tqdm bar (bytes) per downloaded file: the ``FileProgress`` callback of ``download.download_missing``."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, file: Any, done: int, total: int) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(file.target)
        if bar is None:
            from tqdm import tqdm

            bar = self.bars[file.target] = tqdm(total=total, desc=file.target, unit="B", unit_scale=True,
                                                dynamic_ncols=True, leave=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
