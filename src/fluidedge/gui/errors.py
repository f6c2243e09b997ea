"""The GUI's own errors (bad query strings, forms it cannot read)."""

from __future__ import annotations

from fluidedge.errors import InputError


class GuiInputError(InputError):
    """A GUI request was malformed; the message says what is wrong."""
