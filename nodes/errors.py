"""Library errors re-raised with the node's display name in front, so the UI's error dialog says which node failed
(the library's own message already says what was found and what to do)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..joyvasa_core.errors import JoyVASAError
from ..joyvasa_core.validate import short_path


class NodeError(Exception):
    """A user-fixable problem found by a node itself (not the library)."""


@contextlib.contextmanager
def node_errors(display_name: str) -> Iterator[None]:
    """Prefix user-facing errors (JoyVASAError, bad option values, files it could not use) with ``display_name``.

    The original class is kept (the UI shows it), the original error is chained for the traceback; anything else,
    ComfyUI's interrupt included, passes through untouched.
    """
    try:
        yield
    except (JoyVASAError, NodeError, ValueError, OSError) as err:
        if isinstance(err, OSError) and not isinstance(err, JoyVASAError) and err.filename is not None:
            # the system's own file errors: the path shortened (a 5000-character prefix is not repeated)
            raise NodeError(f"{display_name}: cannot write or read {short_path(err.filename)}: "
                            f"{err.strerror or err}.") from err
        wrapped = _named(display_name, err)
        if wrapped is err:
            raise
        raise wrapped from err


def _named(display_name: str, err: Exception) -> Exception:
    """``err`` with the node's name in front (its class kept when it can be rebuilt from one message)."""
    message = str(err)
    if message.startswith(display_name):
        return err
    try:
        return type(err)(f"{display_name}: {message}")
    except TypeError:  # exception classes with other constructors
        return NodeError(f"{display_name}: {message}")
