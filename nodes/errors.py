"""Library errors re-raised with the node's display name in front, so the UI's error dialog says which node failed
(the library's own message already says what was found and what to do)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..joyvasa_core.errors import JoyVASAError


class NodeError(Exception):
    """A user-fixable problem found by a node itself (not the library)."""


@contextlib.contextmanager
def node_errors(display_name: str) -> Iterator[None]:
    """Prefix user-facing errors (JoyVASAError, bad option values, missing files) with ``display_name``.

    The original class is kept (the UI shows it), the original error is chained for the traceback; anything else,
    ComfyUI's interrupt included, passes through untouched.
    """
    try:
        yield
    except (JoyVASAError, NodeError, ValueError, FileNotFoundError) as err:
        message = str(err)
        if message.startswith(display_name):
            raise
        try:
            wrapped = type(err)(f"{display_name}: {message}")
        except TypeError:  # exception classes with other constructors
            wrapped = NodeError(f"{display_name}: {message}")
        raise wrapped from err
