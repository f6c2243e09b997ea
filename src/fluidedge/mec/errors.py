"""Errors of the ME platform package (tree in the package docstring)."""

from __future__ import annotations

from fluidedge.errors import (
    ConflictError,
    FluidedgeError,
    InputError,
    NotFoundError,
    Unprocessable,
)


class MecError(FluidedgeError):
    """Base of the ME platform's errors."""


class MecInvalid(MecError, InputError):
    """A malformed Mp1 request or app descriptor, or a bad ``[mec]`` configuration; the message
    names the field and why. Requests: only what the served schema cannot say (the Mp1 query's
    mutually exclusive filters, a ``serInstanceId`` in a registration, which the schema marks
    read-only); anything else malformed is refused by the models before a route runs (400)."""


class MecUnprocessable(MecError, Unprocessable):
    """A well-formed request (its schema holds) that cannot be carried out as it stands: an id
    in the body that differs from the path's, a change that contradicts the stored resource
    (a service's name, a second service of the same name), a DNS rule whose address is not of
    its ``ipAddressType``, an ACTIVE traffic rule the TOF cannot turn into services (its state
    decides whether its filters must translate), a descriptor whose parts contradict each
    other. 422, as ETSI GS MEC 009 allows for a body whose content cannot be processed."""


class MecUnauthorized(MecError):
    """No valid credentials for an Mp1 route (neither the admin token nor an app's token)."""

    http_status = 401


class MecForbidden(MecError):
    """The caller's app instance may not act for the app instance named in the path."""

    http_status = 403


class MecNotFound(MecError, NotFoundError):
    """The named app instance, service, subscription or rule does not exist (for this caller)."""


class MecConflict(MecError, ConflictError):
    """The request clashes with the app instance's state (confirm_termination with nothing to
    confirm, a traffic rule whose service address another service holds...)."""


class MecUnsupported(MecUnprocessable):
    """A well-formed request this platform cannot carry out yet (an action or filter the TOF
    cannot express, a deployment or traffic rule this daemon's configuration cannot serve):
    422 with the reason, nothing changed."""


class MecPreconditionFailed(MecError):
    """A PUT's ``If-Match`` names none of the resource's current ETags (MEC 011: 412): someone
    changed it since the caller read it."""

    http_status = 412


class MecTooManyRequests(MecError):
    """An app instance sent Mp1 requests faster than ``[mec] app_rate`` allows (MEC 011: 429);
    ``retry_after``: seconds until its next request would pass."""

    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
