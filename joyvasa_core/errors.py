"""Errors a user can act on: each names the stage, the input, what was found and what to do."""

from __future__ import annotations


class JoyVASAError(Exception):
    """Base class of every error this library raises on purpose.

    ``cli`` is the same message in the command line's words (its flags instead of node widget names), for errors
    whose fix names an option; the command line prints it, the nodes print the plain message.
    """

    def __init__(self, *args: object, cli: str | None = None) -> None:
        super().__init__(*args)
        self.cli = cli

    def for_cli(self) -> str:
        return self.cli if self.cli is not None else str(self)


class CheckpointError(JoyVASAError, ValueError):
    """A weight file is missing, truncated, of the wrong kind or in the wrong slot."""


class AudioInputError(JoyVASAError, ValueError):
    """The speech input cannot drive the motion generator (empty, silent, too short, non-finite...)."""


class FaceInputError(JoyVASAError, ValueError):
    """The reference image has no usable face, or is not an image the cropper can read."""


class OptionError(JoyVASAError, ValueError):
    """An option is out of range, contradicts another option, or names a file that must not be written."""


class Cancelled(JoyVASAError):
    """The caller asked to stop (ComfyUI interrupt, Ctrl-C on the command line)."""


class MotionError(JoyVASAError, ValueError):
    """A motion that cannot be rendered: values that are not finite (NaN, Inf) or more frames than the limit."""
