"""Tenant tokens: ``fet_<id>.<secret>``, stored as the SHA-256 of the secret (the scheme and why
a plain hash is enough: :mod:`fluidedge.core.tokens`)."""

from __future__ import annotations

from fluidedge.core.tokens import TokenScheme, digest, matches

PREFIX = "fet_"
SCHEME = TokenScheme(PREFIX)
new_token = SCHEME.new_token
parse = SCHEME.parse

__all__ = ["PREFIX", "SCHEME", "digest", "matches", "new_token", "parse"]
