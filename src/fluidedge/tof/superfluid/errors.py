"""Errors of superfluid services (tree under :class:`fluidedge.errors.FluidedgeError`)."""

from __future__ import annotations

from fluidedge.errors import CapacityError, FluidedgeError, InputError, NotFoundError


class SuperfluidError(FluidedgeError):
    """Base of superfluid errors."""


class OnDemandInvalid(SuperfluidError, InputError):
    """An on-demand service names something that cannot work (template, backend, addresses)."""


class OnDemandTargetMissing(SuperfluidError, NotFoundError):
    """The template (or its interface) an on-demand service names does not exist (404, as
    ``POST /v1/instances`` answers for a missing template)."""


class Refused(SuperfluidError, CapacityError):
    """A demand was refused (instance bound, address pool or creation rate exhausted)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
