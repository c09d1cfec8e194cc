"""The V3 node API the pack is written against, pinned: ``comfy_api.v0_0_2`` (ComfyUI 0.3.75 ships it; ``latest``
changes without warning). Also the pack's graph-edge socket types and the base class every node derives from, which
fills a schema's name, category and description from ``catalog.NODES`` and names the node in its errors."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from comfy_api.v0_0_2 import ComfyExtension, InputImpl, io

from .catalog import NODES
from .errors import node_errors

__all__ = ["ComfyExtension", "InputImpl", "JoyVASANode", "io", "shown_when"]

# the graph-edge types (docs/architecture.md "Objects on the graph edges")
LivePortrait = io.Custom("JOYVASA_LIVEPORTRAIT")
MotionModel = io.Custom("JOYVASA_MOTION_MODEL")
FaceDetector = io.Custom("JOYVASA_FACE_DETECTOR")
Face = io.Custom("JOYVASA_FACE")
Appearance = io.Custom("JOYVASA_APPEARANCE")
AudioFeatures = io.Custom("JOYVASA_AUDIO_FEATURES")
Motion = io.Custom("JOYVASA_MOTION")
Keypoints = io.Custom("JOYVASA_KEYPOINTS")


def shown_when(widget: io.WidgetInput, rule: dict[str, list[str]]) -> io.WidgetInput:
    """``widget`` offered only while each named widget holds one of its values: the rule rides in the input spec's
    extra keys (``/object_info``: ``[type, {..., "shown_when": rule}]``), where web/js/joyvasa.js reads it."""
    widget.extra_dict["shown_when"] = rule
    return widget


class JoyVASANode(io.ComfyNode):
    """A node of this pack: its type name is its class name (ComfyUI's per-run clone keeps the original's)."""

    NODE_ID: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "NODE_ID" not in cls.__dict__:  # a clone ("<name>Clone") copies the original's class dict, NODE_ID in it
            cls.NODE_ID = cls.__name__

    @classmethod
    def schema(cls, inputs: Iterable[io.Input], outputs: Iterable[io.Output] = (), **flags: Any) -> io.Schema:
        """The node's schema: its row of ``catalog.NODES`` plus its sockets (required inputs first, then optional
        ones, in widget order) and flags such as ``is_output_node``."""
        entry = NODES[cls.NODE_ID]
        return io.Schema(node_id=cls.NODE_ID, display_name=entry.display_name, category=entry.category,
                         description=entry.description, inputs=list(inputs), outputs=list(outputs),
                         is_deprecated=entry.hidden, **flags)

    @classmethod
    def display(cls) -> str:
        """The name the UI shows (and errors and log lines start with)."""
        return NODES[cls.NODE_ID].display_name

    @classmethod
    def errors(cls) -> AbstractContextManager[None]:
        """User-facing errors raised inside come out prefixed with the node's display name."""
        return node_errors(cls.display())
