"""Errors of the tenants package (the HTTP status comes from the kind, see fluidedge.errors)."""

from __future__ import annotations

from fluidedge.errors import ConflictError, FluidedgeError, InputError, NotFoundError


class TenantsError(FluidedgeError):
    """Base of the tenants package's errors."""


class TenantNotFound(TenantsError, NotFoundError):
    """No tenant (or token of that tenant) has that name or id."""


class TenantExists(TenantsError, ConflictError):
    """A tenant with that name exists already."""


class TenantInUse(TenantsError, ConflictError):
    """The tenant still owns resources: delete them first."""


class Forbidden(TenantsError):
    """The caller's token may not do this, whatever the object (an admin-only route, a
    read-only built-in template, a capability outside the quota). Never used for another
    tenant's object: that one is a 404, so that its existence is not revealed."""

    http_status = 403


class QuotaExceeded(TenantsError, ConflictError):
    """Admission refused: the tenant's quota or the host's pid budget would be exceeded.

    409 like the instance manager's ``AdmissionRefused``: deleting instances makes room.
    """


class LimitExceeded(Forbidden):
    """A single request asks more than any one instance may have on this host (a policy of
    the host's configuration, not a malformed request: 403, like a refused capability)."""


class InvalidTenant(TenantsError, InputError):
    """A tenant's description given to the service is malformed (the message says where)."""
