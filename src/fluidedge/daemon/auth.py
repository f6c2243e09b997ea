"""Bearer-token authorisation for the API.

Mutating calls (POST, PUT, PATCH, DELETE) always need ``Authorization: Bearer <token>``. Reads
need it too unless the daemon is configured with ``api.open_reads = true`` (the default, safe
because the API listens on loopback by default).
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class TokenGuard:
    """A FastAPI dependency checking the bearer token."""

    def __init__(self, token: str, *, open_reads: bool) -> None:
        self._token = token.encode()
        self._open_reads = open_reads

    def __call__(self, request: Request) -> None:
        if self._open_reads and request.method in _SAFE_METHODS:
            return
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self._token
        ):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="missing or invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
