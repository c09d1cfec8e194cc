"""ComfyUI-JoyVASA: talking portraits from speech, rendered with LivePortrait's networks.

ComfyUI imports this file; it only registers the node adapters of ``nodes/`` and the web extension.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
