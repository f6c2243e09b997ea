"""Errors of the OVN part (tree in the package docstring)."""

from __future__ import annotations

from fluidedge.errors import (
    ConflictError,
    FluidedgeError,
    InputError,
    NotFoundError,
    SystemFailure,
)


class OvnError(FluidedgeError):
    """Base of the OVN part's errors."""


class OvnFailure(OvnError, SystemFailure):
    """An OVN daemon or tool failed; the message carries its stderr."""


class OvnUnreachable(OvnFailure):
    """No member of the northbound database accepts a connection (the central is down, or
    not up yet after a reboot): said at once, not after the tool's own timeout (503)."""

    http_status = 503


class OvnInvalid(OvnError, InputError):
    """A name or address given to the OVN part is not acceptable (the message says why)."""


class OvnUnavailable(OvnError, ConflictError):
    """The request needs OVN where this node has none, or elsewhere than its chassis (409)."""


class OvnConflict(OvnError, ConflictError):
    """The object exists already, or is in use (409)."""


class OvnNotFound(OvnError, NotFoundError):
    """No such object (404)."""
