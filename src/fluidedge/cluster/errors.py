"""Errors of the cluster part (tree in the package docstring)."""

from __future__ import annotations

from fluidedge.errors import (
    CapacityError,
    ConflictError,
    FluidedgeError,
    InputError,
    NotFoundError,
    SystemFailure,
)


class ClusterError(FluidedgeError):
    """Base of the cluster part's errors."""


class ClusterInvalid(ClusterError, InputError):
    """A name, URL or request is not acceptable (the message says why)."""


class NodeNotFound(ClusterError, NotFoundError):
    """No node of that name is registered."""


class NodeUnavailable(ClusterError, ConflictError):
    """The node is dead, or the request may not be forwarded (the message says why)."""


class NoNodeFits(ClusterError, CapacityError):
    """No live node reports the capacity the request needs."""


class ClusterFailure(ClusterError, SystemFailure):
    """etcd or another node failed; the message carries what it said."""
