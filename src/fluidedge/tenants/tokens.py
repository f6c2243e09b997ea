"""Tenant tokens: ``fet_<id>.<secret>``, stored as the SHA-256 of the secret.

The id (12 hex digits) finds the row; the secret (32 random bytes, URL-safe base64) is checked
against its hash in constant time. A plain hash suffices: the secret has 256 bits of entropy,
so there is nothing for a slow password hash to protect against, and checking stays a few
microseconds per request. The token itself is returned once, at creation; the store, the audit
log and every listing only ever see its id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "fet_"
_TOKEN_RE = re.compile(r"^fet_([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$")


def new_token() -> tuple[str, str, str]:
    """A fresh ``(id, token, hash of its secret)``."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return token_id, f"{PREFIX}{token_id}.{secret}", digest(secret)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed tenant token, else None."""
    match = _TOKEN_RE.match(token)
    return (match.group(1), match.group(2)) if match else None


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)
