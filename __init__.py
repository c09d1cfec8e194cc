"""ComfyUI-JoyVASA: talking portraits from speech, rendered with LivePortrait's networks.

ComfyUI imports this file; it only hands over the V3 extension of ``nodes/`` (``comfy_entrypoint``) and the web
extension. No ``NODE_CLASS_MAPPINGS``: ComfyUI would take that V1 registry instead of the entrypoint.
"""

from .nodes import comfy_entrypoint

WEB_DIRECTORY = "./web"

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
