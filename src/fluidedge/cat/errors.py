"""Errors of the CAT part: one base, each deriving from a fluidedge error kind."""

from __future__ import annotations

from fluidedge.errors import (
    ConflictError,
    FluidedgeError,
    InputError,
    NotFoundError,
    SystemFailure,
    Unprocessable,
)


class CatError(FluidedgeError):
    """Base of the CAT part's errors."""


class CatInputError(CatError, InputError):
    """A mask, layout or request is malformed (the reason may be the kernel's own)."""


class CatUnprocessable(CatInputError, Unprocessable):
    """The request is well-formed (the API's schema holds: a body that breaks it is a 400) but
    this host or the declared state cannot take it: a mask the host's cache refuses (outside
    ``cbm_mask``, too few bits, holes where the host has no sparse masks), a resource or cache
    id the host lacks, a layout inconsistent in itself (one name or one CPU twice), a CPU
    range written backwards, the path naming another class than the body, a role the preset's
    model has not, or a value the kernel itself refused (EINVAL). 422, as for any request
    understood and refused for what it asks. Still a :class:`CatInputError`, so callers that
    only ask whether the input was at fault need not know the difference."""


class CosNotFound(CatError, NotFoundError):
    """No class of service (or instance) has that name."""


class CatConflict(CatError, ConflictError):
    """The request clashes with the host's state (CLOSIDs used up, class in use...)."""


class KernelFailure(CatError, SystemFailure):
    """resctrl failed in a way we did not foresee; the message carries errno and status."""


class NotSupported(CatError):
    """The host has no usable resctrl; the message lists what was checked."""

    http_status = 501
