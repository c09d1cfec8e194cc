"""Files being written live under a recognisable hidden name beside their target until they are complete.

``.talking.joyvasa-partial-4242.mp4`` is the unfinished ``talking.mp4`` of process 4242. A run that ends in any way
Python sees (normal end, error, Ctrl-C, SIGTERM/SIGHUP on the command line) deletes its own partial file; one killed
outright (SIGKILL, power loss) cannot, so the next run removes partial files whose process no longer exists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TAG = "joyvasa-partial"
_PARTIAL_RE = re.compile(rf"^\..+\.{TAG}-(\d+)(\.[^.]+)?$")


def _umask() -> int:
    """The process's umask (read by setting and restoring it, once, at import)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() gives a new file; some writers (safetensors) make theirs 0600
_LIVE: set[Path] = set()  # partial files this process is writing now


def track(partial: Path) -> None:
    """Remember a partial file being written, so a forced stop can remove it (see :func:`remove_live_partials`)."""
    _LIVE.add(Path(partial))


def untrack(partial: Path) -> None:
    _LIVE.discard(Path(partial))


def remove_live_partials() -> None:
    """Delete every partial file this process is writing: for a stop that cannot wait for the ``finally`` blocks
    (the main thread stuck in one long native call)."""
    for partial in list(_LIVE):
        try:
            os.unlink(partial)
        except OSError:
            pass


def partial_path(final: str | os.PathLike, pid: int | None = None) -> Path:
    """The hidden name ``final`` is written under by process ``pid`` (this one by default)."""
    p = Path(final)
    return p.with_name(f".{p.stem}.{TAG}-{os.getpid() if pid is None else pid}{p.suffix}")


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap, safe liveness probe: keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_stale_partials(folder: str | os.PathLike) -> list[Path]:
    """Delete this package's partial files in ``folder`` left by processes that are gone; returns what went."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _PARTIAL_RE.match(entry.name)
        if m is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _alive(pid):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


@contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield the partial path to write ``final`` under; on success it is renamed over ``final`` in one step, on any
    error (interrupt included) it is removed, so ``final`` is complete or untouched."""
    partial = partial_path(final)
    track(partial)
    try:
        yield partial
        os.chmod(partial, FILE_MODE)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
        untrack(partial)
