"""A face offered on the live page: how each viewer's session is opened, and the portrait shown before it talks.

The command line and the ComfyUI node both end here: the models (loaded once, shared by every session), one
prepared face and the options; ``open_session`` makes a fresh :class:`~joyvasa_core.live.session.LiveSession` per
connection.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace

from ..audio.encoder import MOTION_FPS
from ..face.reference import ReferenceFace
from ..loading import ModelSet
from ..motion.blinks import DEFAULT_RATE, LIVE_BLINK_MODES, LIVE_BLINKS, BlinkOptions, job_blinks
from ..motion.streaming import DEFAULT_CHUNK_FRAMES, DEFAULT_LOOKAHEAD_FRAMES, StreamOptions
from ..pipeline import AnimateOptions, SourceFace, animate_options, extract_appearance
from ..types import LivePortraitModels, MotionModel
from .server import LiveSource
from .session import LiveSession
from .wire import jpeg

__all__ = ["DEFAULT_CHUNK_FRAMES", "DEFAULT_LOOKAHEAD_FRAMES", "DEFAULT_RATE", "LIVE_BLINKS", "LIVE_BLINK_MODES",
           "live_options", "live_source", "one_face", "source_name"]


def source_name(node_id: str) -> str:
    """The URL-safe source name of a ComfyUI node (one source per node, replaced when it runs again)."""
    return "node-" + re.sub(r"[^A-Za-z0-9_-]", "_", node_id)


def live_options(face: ReferenceFace, seed: int, cfg_scale: float, paste_back: bool, chunk_frames: int,
                 lookahead_frames: int, blinks: str = LIVE_BLINKS,
                 blink_rate: float = DEFAULT_RATE) -> tuple[AnimateOptions, StreamOptions, BlinkOptions]:
    """The node's widgets as the session's options: the face's own preset (human or animal), its seed and
    guidance, how the motion follows the speech, and the blinks (seeded by the same seed, as a job's)."""
    options = animate_options(animal=face.mode == "animal", paste_back=paste_back and face.mode != "animal",
                              sampling={"seed": seed, "cfg_scale": cfg_scale})
    stream = StreamOptions(chunk_frames=chunk_frames, lookahead=lookahead_frames)
    return options, stream, job_blinks(blinks, seed, blink_rate)


def one_face(face: ReferenceFace, liveportrait: LivePortraitModels, image_index: int = 0) -> SourceFace:
    """The ``image_index``-th face of a prepared reference with its appearance, made once for every viewer."""
    if not 0 <= image_index < len(face):
        raise ValueError(f"live: image_index {image_index} is out of range: the face holds {len(face)} image(s)")
    one = replace(face, faces=(face[image_index],))
    return SourceFace(reference=one, appearance=extract_appearance(liveportrait, one))


def live_source(liveportrait: Callable[[], LivePortraitModels], motion_model: Callable[[], MotionModel],
                face: SourceFace, options: AnimateOptions, stream: StreamOptions, label: str = "",
                blinks: BlinkOptions | None = None) -> LiveSource:
    """A source whose sessions talk through ``face`` (made once, shared). The models come from callables, so a host
    that moves networks between devices (ComfyUI's memory manager) puts them on the device as each session opens and
    again before each of its steps (another workflow may have offloaded them meanwhile). ``blinks`` None: the
    session's default (``LiveSession``)."""
    prepared = face.reference[0]
    portrait = prepared.image if options.paste_back else prepared.crop.crop512

    def open_session() -> LiveSession:
        models = ModelSet(liveportrait=liveportrait(), motion_model=motion_model())
        return LiveSession(models, face, options, stream, clock=time.perf_counter, blinks=blinks,
                           keep_loaded=lambda: (liveportrait(), motion_model()))

    return LiveSource(open_session=open_session, portrait_jpeg=jpeg(portrait), fps=float(MOTION_FPS), label=label)
