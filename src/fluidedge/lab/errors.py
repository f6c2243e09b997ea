"""Errors of the lab part (tree in :mod:`fluidedge.lab`)."""

from __future__ import annotations

from fluidedge.errors import (
    ConflictError,
    FluidedgeError,
    InputError,
    NotFoundError,
    SystemFailure,
)


class LabError(FluidedgeError):
    """Base of every lab error."""


class LabConfigError(LabError, InputError):
    """The lab description (TOML) is invalid; the message names the field."""


class LabAlreadyUpError(LabError, ConflictError):
    """A lab with this prefix is already up (or half up): bring it down first."""


class LabNotUpError(LabError, NotFoundError):
    """No lab with this prefix is up."""


class LabSystemError(LabError, SystemFailure):
    """Setting up a namespace, link or process failed."""
