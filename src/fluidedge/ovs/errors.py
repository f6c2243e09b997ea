"""Errors of the Open vSwitch part (tree in the package docstring)."""

from __future__ import annotations

from fluidedge.errors import FluidedgeError, SystemFailure


class OvsError(FluidedgeError):
    """Base of the Open vSwitch part's errors."""


class OvsFailure(OvsError, SystemFailure):
    """An OVS daemon or tool failed; the message carries its stderr."""


class OvsNotRunning(OvsError, SystemFailure):
    """The switch a call needs is not running (it was stopped or never started)."""
