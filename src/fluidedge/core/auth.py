"""Bearer-token authorisation for the API (a pure policy; :mod:`fluidedge.daemon.edge` applies it).

Mutating calls (POST, PUT, PATCH, DELETE) always need ``Authorization: Bearer <token>``. Reads
(GET, HEAD, OPTIONS) need it too unless ``api.open_reads = true`` (the default, safe because the
API listens on loopback by default); that covers every path, ``/metrics``, ``/openapi.json``,
``/docs`` and ``/redoc`` included. ``/healthz`` stays open (a liveness probe carries no token).
The same rules hold on the Unix socket. Tokens are compared in constant time
(:func:`hmac.compare_digest`).

Routes may ask whether the request carried a valid token (:func:`authenticated`) to redact
what an anonymous reader must not see (template ``env`` values and ``files`` contents).
"""

from __future__ import annotations

import hmac
from enum import Enum

from starlette.requests import Request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/healthz"})
STATE_KEY = "fluidedge.authenticated"
REDACTED = "<redacted>"


class Presented(Enum):
    """What a request showed: a valid token, none, or a wrong one (audit log values)."""

    TOKEN = "token"  # noqa: S105 (a label, not a secret)
    NONE = "none"
    INVALID = "invalid-token"


class TokenGuard:
    """Decides whether a request may proceed, given its method, path and Authorization header."""

    def __init__(self, token: str, *, open_reads: bool, own_auth: tuple[str, ...] = ()) -> None:
        self._token = token.encode()
        self.open_reads = open_reads
        # Path prefixes that authenticate their own requests (the web GUI's session login and
        # CSRF tokens, fluidedge.gui): a browser cannot send a bearer token.
        self._own_auth = own_auth

    def presented(self, authorization: bytes | None) -> Presented:
        if not authorization:
            return Presented.NONE
        scheme, _, value = authorization.partition(b" ")
        if scheme.lower() != b"bearer":
            return Presented.INVALID
        if hmac.compare_digest(value.strip(), self._token):
            return Presented.TOKEN
        return Presented.INVALID

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
