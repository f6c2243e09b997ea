"""App instance credentials for Mp1: ``fea_<id>.<secret>``, stored as the SHA-256 of the secret.

The same scheme as tenant tokens (:mod:`fluidedge.core.tokens`; why a plain hash is enough is
said there), with its own prefix so a log line tells which kind of token it saw. The token is
returned once, when the app instance is created; the store keeps its id and hash only.
"""

from __future__ import annotations

from fluidedge.core.tokens import TokenScheme, digest, matches

PREFIX = "fea_"
SCHEME = TokenScheme(PREFIX)
new_token = SCHEME.new_token
parse = SCHEME.parse

__all__ = ["PREFIX", "SCHEME", "digest", "matches", "new_token", "parse"]
