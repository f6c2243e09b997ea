"""Errors of the daemon package (tree in the package docstring)."""

from __future__ import annotations

from fluidedge.errors import FluidedgeError, InputError


class DaemonError(FluidedgeError):
    """Base of daemon errors."""


class ConfigError(DaemonError, InputError):
    """The configuration is invalid; the message names the key."""
