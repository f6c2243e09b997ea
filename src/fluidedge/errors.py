"""The root of every error fluidedge raises on purpose.

Each part has its own base that derives from :class:`FluidedgeError`; a part's errors may also
derive from one of the *kinds* below, which tell the API which HTTP status answers them::

    FluidedgeError
    ├── InputError        400  the request or input is malformed (a reason is always given)
    │   └── Unprocessable 422  well-formed (its schema holds) but cannot be carried out as it
    │                          stands: it contradicts stored state, the host or the config
    ├── NotFoundError     404  the named object does not exist
    ├── ConflictError     409  the request clashes with existing state
    ├── CapacityError     503  the host cannot take it now (pool, CPUs, memory)
    ├── DeadlineExceeded  504  a wait the request asked for ran out (e.g. readiness)
    ├── StorageFull       507  the disk under the state directory is full
    └── SystemFailure     500  the kernel or an external tool failed underneath us

Third-party errors (subprocess, netlink, sqlite) are mapped to these at the boundary where
they are caught, so callers only ever handle fluidedge errors.
"""

from __future__ import annotations


class FluidedgeError(Exception):
    """Base of all deliberate fluidedge errors."""

    http_status = 500


class InputError(FluidedgeError):
    """Malformed input: the message says which field and why."""

    http_status = 400


class Unprocessable(InputError):
    """The request is well-formed (the API's schema holds: a body that breaks it is a 400) but
    cannot be carried out as it stands: it contradicts stored objects, the host or the daemon's
    configuration (an address outside its network, a port that is not an instance's, a part
    that is not enabled). The message says which field and why. 422, as for any request
    understood and refused for what it asks; still an :class:`InputError` for callers that
    only ask whether the input was at fault."""

    http_status = 422


class NotFoundError(FluidedgeError):
    """The named object does not exist."""

    http_status = 404


class ConflictError(FluidedgeError):
    """The request conflicts with existing state (name or address in use...)."""

    http_status = 409


class CapacityError(FluidedgeError):
    """The host cannot take the request now (capacity or pool exhausted)."""

    http_status = 503


class DeadlineExceeded(FluidedgeError):
    """A wait the request asked for did not end in time (the message says what and how long)."""

    http_status = 504


class StorageFull(FluidedgeError):
    """No space left where the daemon writes (store, state files); nothing was acknowledged."""

    http_status = 507


class SystemFailure(FluidedgeError):
    """A kernel call or external tool failed; the message carries its diagnostics."""

    http_status = 500
