"""Errors of the daemon package (tree in the package docstring)."""

from __future__ import annotations

from fluidedge.errors import FluidedgeError, SystemFailure


class DaemonError(FluidedgeError):
    """Base of daemon errors."""


class StateDirError(DaemonError, SystemFailure):
    """The state directory cannot be used (missing rights, read-only, path too long)."""
