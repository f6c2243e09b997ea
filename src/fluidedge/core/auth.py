"""Bearer-token authorisation for the API (a pure policy; :mod:`fluidedge.daemon.edge` applies it).

Mutating calls (POST, PUT, PATCH, DELETE) always need ``Authorization: Bearer <token>``. Reads
(GET, HEAD, OPTIONS) need it too unless ``api.open_reads = true`` (the default, safe because the
API listens on loopback by default); that covers every path, ``/metrics``, ``/openapi.json``,
``/docs`` and ``/redoc`` included. ``/healthz`` stays open (a liveness probe carries no token).
The same rules hold on the Unix socket. Tokens are compared in constant time
(:func:`hmac.compare_digest`).

Routes may ask whether the request carried a valid token (:func:`authenticated`) to redact
what an anonymous reader must not see (template ``env`` values and ``files`` contents).

Tenant tokens (:mod:`fluidedge.tenants`): besides the admin token, a guard may be given a
``tenant_resolver`` that maps a bearer token to its tenant. A tenant token authenticates only
on the tenant-scoped routes (:data:`TENANT_ROUTES`: instances, templates, networks, security
groups, service chains, ``/v1/whoami``, and reading the API's documentation); on any other
route it is refused with 403 (the admin's routes: tenants, TOF, pools, orphans, stats,
metrics...). The routes themselves then scope what the tenant sees (:mod:`fluidedge.tenants.scope`).
:func:`authenticated` stays true for the admin token only.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from enum import Enum

from starlette.requests import Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/healthz"})
STATE_KEY = "fluidedge.authenticated"
TENANT_KEY = "fluidedge.tenant"
# Routes may add fields to their audit record (e.g. the id of a token just created):
# ``request.scope["state"][AUDIT_KEY] = {...}``.
AUDIT_KEY = "fluidedge.audit"
REDACTED = "<redacted>"

# Path prefixes a tenant token may reach (any method), and paths it may read. Parts that add
# tenant-scoped routes add their prefix here (and scope their routes: fluidedge.tenants.scope).
TENANT_ROUTES: list[str] = [
    "/v1/instances",
    "/v1/templates",
    "/v1/networks",
    "/v1/security-groups",
    "/v1/chains",
    "/v1/whoami",
]
TENANT_READS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


class Presented(Enum):
    """What a request showed: a valid token, none, or a wrong one (audit log values)."""

    TOKEN = "token"  # noqa: S105 (a label, not a secret)
    TENANT = "tenant-token"
    NONE = "none"
    INVALID = "invalid-token"


class TokenGuard:
    """Decides whether a request may proceed, given its method, path and Authorization header."""

    def __init__(
        self,
        token: str,
        *,
        open_reads: bool,
        own_auth: tuple[str, ...] = (),
        tenant_resolver: Callable[[str], str | None] | None = None,
    ) -> None:
        self._token = token.encode()
        self._tenant_resolver = tenant_resolver
        self.open_reads = open_reads
        # Path prefixes that authenticate their own requests (the web GUI's session login and
        # CSRF tokens, fluidedge.gui): a browser cannot send a bearer token.
        self._own_auth = own_auth

    def presented(self, authorization: bytes | None) -> Presented:
        return self.identify(authorization)[0]

    def identify(self, authorization: bytes | None) -> tuple[Presented, str | None]:
        """What the request presented and, for a tenant token, its tenant."""
        if not authorization:
            return Presented.NONE, None
        scheme, _, value = authorization.partition(b" ")
        if scheme.lower() != b"bearer":
            return Presented.INVALID, None
        value = value.strip()
        if hmac.compare_digest(value, self._token):
            return Presented.TOKEN, None
        if self._tenant_resolver is not None:
            tenant = self._tenant_resolver(value.decode("ascii", "replace"))
            if tenant is not None:
                return Presented.TENANT, tenant
        return Presented.INVALID, None

    @staticmethod
    def tenant_may(method: str, path: str) -> bool:
        """Whether a tenant token may reach ``path`` at all (see the module docstring)."""
        if path in PUBLIC_PATHS or (method in SAFE_METHODS and path in TENANT_READS):
            return True
        return any(path == p or path.startswith(p + "/") for p in TENANT_ROUTES)

    def needs_token(self, method: str, path: str) -> bool:
        if path in PUBLIC_PATHS:
            return False
        if any(path == p or path.startswith(p + "/") for p in self._own_auth):
            return False
        return not (self.open_reads and method in SAFE_METHODS)


def authenticated(request: Request) -> bool:
    """True if the request carried the valid bearer token (set by the edge middleware)."""
    return bool(request.scope.get("state", {}).get(STATE_KEY, False))


def redact_values(mapping: dict[str, str]) -> dict[str, str]:
    """``mapping`` with every value replaced by :data:`REDACTED` (keys stay visible)."""
    return dict.fromkeys(mapping, REDACTED)
