"""Logins, sessions and CSRF tokens of the web GUI.

A login presents the API's bearer token once (POSTed, never in a URL); the server keeps the
session (principal, CSRF token, flash messages) in memory and the browser holds only a random
session id in an HttpOnly, SameSite=Strict cookie scoped to ``/ui``. Every form carries the
session's CSRF token (synchronizer pattern); the login form, which has no session yet, uses a
double-submit cookie. Sessions end on logout, after ``session_idle_s`` without a request, and on
daemon restart (they are not stored: a token is needed to get one back).

A :class:`Principal` is what a session may see: today the operator (``tenant=None``, everything);
once tenants exist, :meth:`Authenticator.principal` maps a tenant's token to a principal with a
tenant and :func:`fluidedge.gui.scope.visible` filters every list the pages show.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_COOKIE = "fe_session"
LOGIN_COOKIE = "fe_login"
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class Principal:
    name: str
    tenant: str | None = None  # None: the node's operator (sees and manages everything)


@dataclass
class Session:
    sid: str
    principal: Principal
    csrf: str
    last_seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (level, text)

    def flash(self, text: str, level: str = "ok") -> None:
        self.flashes.append((level, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time comparison of two secrets (empty never matches)."""
    return bool(presented) and hmac.compare_digest(presented.encode(), expected.encode())


class Authenticator:
    """Maps a presented token to a principal (the daemon's one token: the operator)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def principal(self, presented: str) -> Principal | None:
        if same_secret(presented.strip(), self._token):
            return Principal("operator")
        return None


class Sessions:
    """Live sessions by id, expired after ``idle_s`` without use (thread-safe)."""

    def __init__(self, idle_s: float, now: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self._now = now
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, principal: Principal) -> Session:
        session = Session(
            sid=secrets.token_urlsafe(32),
            principal=principal,
            csrf=secrets.token_urlsafe(32),
            last_seen=self._now(),
        )
        with self._lock:
            self._expire()
            if len(self._by_id) >= MAX_SESSIONS:  # drop the least recently used
                oldest = min(self._by_id.values(), key=lambda s: s.last_seen)
                del self._by_id[oldest.sid]
            self._by_id[session.sid] = session
        return session

    def get(self, sid: str | None, *, touch: bool = True) -> Session | None:
        """The live session ``sid`` (its idle clock restarted unless ``touch=False``: an open
        live stream alone does not keep a session alive)."""
        if not sid:
            return None
        with self._lock:
            session = self._by_id.get(sid)
            if session is None:
                return None
            now = self._now()
            if now - session.last_seen > self.idle_s:
                del self._by_id[sid]
                return None
            if touch:
                session.last_seen = now
            return session

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)

    def _expire(self) -> None:
        now = self._now()
        for sid in [s.sid for s in self._by_id.values() if now - s.last_seen > self.idle_s]:
            del self._by_id[sid]
