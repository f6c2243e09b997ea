"""Errors of the Traffic Offloading Function (tree in :mod:`fluidedge.tof`)."""

from __future__ import annotations

from fluidedge.errors import (
    CapacityError,
    ConflictError,
    FluidedgeError,
    InputError,
    NotFoundError,
    SystemFailure,
)


class TofError(FluidedgeError):
    """Base of TOF errors."""


class TofConfigError(TofError, InputError):
    """The ``[tof]`` configuration table is invalid."""


class ServiceNotFound(TofError, NotFoundError):
    """No service has that name (or service IP)."""


class ServiceConflict(TofError, ConflictError):
    """The name or service IP is already used by another service."""


class ServiceInvalid(TofError, InputError):
    """A service violates a rule the schema alone cannot express (e.g. mixed families)."""


class DataPlaneError(TofError, SystemFailure):
    """The data plane could not be started or could not apply a change."""


class DataPlaneWaiting(TofError, CapacityError):
    """The data plane waits for the host (its namespace or interfaces): what needs it running
    is refused until it starts (503; :mod:`fluidedge.tof.presence`)."""
