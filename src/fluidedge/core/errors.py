"""Errors of the core package (tree in the package docstring)."""

from __future__ import annotations

from fluidedge.errors import FluidedgeError, InputError


class CoreError(FluidedgeError):
    """Base of core errors."""


class ConfigError(CoreError, InputError):
    """The configuration is invalid; the message names the key."""
