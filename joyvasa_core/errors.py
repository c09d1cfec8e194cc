"""Errors a user can act on: each names the stage, the input, what was found and what to do."""

from __future__ import annotations


class JoyVASAError(Exception):
    """Base class of every error this library raises on purpose."""


class CheckpointError(JoyVASAError, ValueError):
    """A weight file is missing, truncated, of the wrong kind or in the wrong slot."""


class AudioInputError(JoyVASAError, ValueError):
    """The speech input cannot drive the motion generator (empty, silent, too short, non-finite...)."""


class FaceInputError(JoyVASAError, ValueError):
    """The reference image has no usable face, or is not an image the cropper can read."""


class Cancelled(JoyVASAError):
    """The caller asked to stop (ComfyUI interrupt, Ctrl-C on the command line)."""
