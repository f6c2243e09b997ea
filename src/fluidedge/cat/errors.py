"""Errors of the CAT part: one base, each deriving from a fluidedge error kind."""

from __future__ import annotations

from fluidedge.errors import (
    ConflictError,
    FluidedgeError,
    InputError,
    NotFoundError,
    SystemFailure,
)


class CatError(FluidedgeError):
    """Base of the CAT part's errors."""


class CatInputError(CatError, InputError):
    """A mask, layout or request is malformed (the reason may be the kernel's own)."""


class CosNotFound(CatError, NotFoundError):
    """No class of service (or instance) has that name."""


class CatConflict(CatError, ConflictError):
    """The request clashes with the host's state (CLOSIDs used up, class in use...)."""


class KernelFailure(CatError, SystemFailure):
    """resctrl failed in a way we did not foresee; the message carries errno and status."""


class NotSupported(CatError):
    """The host has no usable resctrl; the message lists what was checked."""

    http_status = 501
