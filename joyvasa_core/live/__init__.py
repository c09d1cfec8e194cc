"""Live: speech pushed while it arrives, frames out as they become final (``session.py``), with its figures
(``stats.py``). The motion side is ``motion/streaming.py``; the file-driven command is ``cli_live.py``; the page
that streams a microphone to a session and plays the face back is ``server.py`` (WebSocket), ``wire.py`` (what
travels on it), ``source.py`` (a face offered to viewers) and ``page/``."""

from .session import LiveFrame, LiveSession
from .stats import LiveStats

__all__ = ["LiveFrame", "LiveSession", "LiveStats"]
