"""Errors of the instances part (tree in the package docstring)."""

from __future__ import annotations

from fluidedge.errors import (
    ConflictError,
    DeadlineExceeded,
    FluidedgeError,
    NotFoundError,
    SystemFailure,
    Unprocessable,
)


class InstancesError(FluidedgeError):
    """Base of the instance manager's errors."""


class TemplateNotFound(InstancesError, NotFoundError):
    """No template has that name."""


class InstanceNotFound(InstancesError, NotFoundError):
    """No instance has that name."""


class NetworkNotFound(InstancesError, NotFoundError):
    """No network has that name."""


class InterfaceNotFound(InstancesError, NotFoundError):
    """An instance request assigns an interface its template does not have."""


class NetnsNotFound(InstancesError, NotFoundError):
    """A network names a network namespace that does not exist."""


class InvalidRequest(InstancesError, Unprocessable):
    """The request is well-formed (the API's schema holds: a body that breaks it is a 400) but
    cannot be carried out as it stands: it contradicts its template, a network, an image or the
    daemon's configuration (an address outside the network's subnet, files that cannot all be
    written, a class of service without the CAT part...). The message says which field and
    why; 422, as for any request understood and refused for what it asks."""


class NameInUse(InstancesError, ConflictError):
    """An object with that name already exists."""


class AddressInUse(InstancesError, ConflictError):
    """The address is already held by another instance on that network."""


class InUse(InstancesError, ConflictError):
    """The object is still used (a template by instances, a network by templates)."""


class NotABridge(InstancesError, ConflictError):
    """A network names an existing interface that is not a bridge (it is not adopted)."""


class WrongState(InstancesError, ConflictError):
    """The instance is not in a state that allows the operation."""


class AdmissionRefused(InstancesError, ConflictError):
    """Admission control refused: CPUs or memory would be overcommitted beyond the limits.

    409, not 503: the refusal follows from the resources already committed (deleting instances
    makes room), and a 5xx would tell clients and monitoring that the daemon is failing.
    """


class RuntimeFailure(InstancesError, SystemFailure):
    """runc, a cgroup write or a netlink call failed underneath us."""


class ReadinessTimeout(InstancesError, DeadlineExceeded):
    """The workload did not pass its readiness check within ``readiness.timeout_s``."""


class WorkloadFailed(RuntimeFailure):
    """The workload exited before it was ready: its own fault (a wrong command, a crash), not
    the host's, so 422 (the request was understood, its instructions could not be carried out)
    rather than a 5xx."""

    http_status = 422


class LauncherGone(RuntimeFailure):
    """A shell's launcher exited before it was released (a pooled shell that died waiting:
    the manager takes another shell, or the cold path, instead of failing the request)."""


class FreezerBusy(RuntimeFailure):
    """The freezer cgroup did not reach the wanted state within the wait asked for."""


class ImageNotFound(InstancesError, NotFoundError):
    """No image has that name."""


class ImageSourceNotFound(InstancesError, NotFoundError):
    """An import names a file or directory that does not exist on the daemon's host."""


class ImageUnusable(InstancesError, Unprocessable):
    """The source exists but is not an image this host can run (not an image at all, another
    architecture, ids beyond the mapped range...): 422, the request was understood but its
    content cannot be used."""
