"""Bearer tokens of the form ``<prefix><id>.<secret>``, stored as the SHA-256 of the secret.

Tenants (``fet_``) and ME app instances (``fea_``) use the same scheme with their own prefix,
so a log line tells which kind of token it saw. The id (12 hex digits) finds the row; the
secret (32 random bytes, URL-safe base64) is checked against its hash in constant time. A plain
hash suffices: the secret has 256 bits of entropy, so there is nothing for a slow password hash
to protect against, and checking stays a few microseconds per request. The token itself is
returned once, at creation; the store, the audit log and every listing only ever see its id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field


def digest(secret: str) -> str:
    """What the store keeps of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_digest: str) -> bool:
    """Whether ``secret`` is the one ``stored_digest`` was made from (constant time)."""
    return hmac.compare_digest(digest(secret), stored_digest)


@dataclass(frozen=True)
class TokenScheme:
    """The tokens of one kind: ``prefix`` such as ``"fet_"``."""

    prefix: str
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z]{2,8}_", self.prefix):
            raise ValueError(f"token prefix {self.prefix!r}: 2-8 lower-case letters and '_'")
        pattern = re.compile(rf"^{self.prefix}([0-9a-f]{{12}})\.([A-Za-z0-9_-]{{43}})$")
        object.__setattr__(self, "_pattern", pattern)

    def new_token(self) -> tuple[str, str, str]:
        """A fresh ``(id, token, hash of its secret)``."""
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        return token_id, f"{self.prefix}{token_id}.{secret}", digest(secret)

    def parse(self, token: str) -> tuple[str, str] | None:
        """``(id, secret)`` of a well-formed token of this kind, else None."""
        match = self._pattern.match(token)
        return (match.group(1), match.group(2)) if match else None
