"""App instance credentials for Mp1: ``fea_<id>.<secret>``, stored as the SHA-256 of the secret.

The same scheme as tenant tokens (:mod:`fluidedge.tenants.tokens`; why a plain hash is enough is
said there), with its own prefix so a log line tells which kind of token it saw. The token is
returned once, when the app instance is created; the store keeps its id and hash only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "fea_"
_TOKEN_RE = re.compile(r"^fea_([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$")


def new_token() -> tuple[str, str, str]:
    """A fresh ``(id, token, hash of its secret)``."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return token_id, f"{PREFIX}{token_id}.{secret}", digest(secret)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed app token, else None."""
    match = _TOKEN_RE.match(token)
    return (match.group(1), match.group(2)) if match else None


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)
