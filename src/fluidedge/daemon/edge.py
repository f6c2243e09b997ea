"""The API's edge: one ASGI middleware applying the cross-cutting rules to every request.

In order, before the application sees a request:

1. authorisation (:class:`fluidedge.core.auth.TokenGuard`): 401 with a reason, on every path
   (the documentation and ``/metrics`` included), so that no route can forget it;
2. methods: ``OPTIONS`` answers 204 with an ``Allow`` header listing every method of the path,
   and a method the path does not have answers 405 with the same header and a JSON reason
   (Starlette's own 405 lists only the first route matching the path, in plain text);
3. the body limit (``api.max_body_bytes``): a larger ``Content-Length`` is refused with 413
   before a byte is read, and a chunked body is read up to the limit and refused past it.

Then the request goes to the application, or, for a part's *hot route*
(:mod:`fluidedge.core.hot`: instance create, pause and resume), to that route's handler
directly (FastAPI's router and dependency machinery cost more than a warm creation's own
work); a handler that declines (returns None) hands the request on to the application with its
body replayed.

After the response: the request's duration goes to the daemon's histogram (labelled by route
template, not path, so the series stay bounded) and a mutating call goes to the audit log.
One middleware rather than four keeps the per-request cost to one extra call (the warm
instance path is a few hundred microseconds end to end).
"""

from __future__ import annotations

import errno
import json
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.routing import BaseRoute, Route

from fluidedge.core.auth import (
    AUDIT_KEY,
    SAFE_METHODS,
    STATE_KEY,
    TENANT_KEY,
    Presented,
    TokenGuard,
)
from fluidedge.core.hot import HotRoute, find
from fluidedge.core.openapi import ERROR_HEADER
from fluidedge.daemon.audit import AuditLog, body_name
from fluidedge.daemon.metrics import DaemonMetrics
from fluidedge.errors import FluidedgeError, StorageFull

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger("fluidedge.daemon")
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_ALLOW_CACHE_SIZE = 4096


async def send_json(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer with ``{"detail": ...}`` (the error model of every route)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _specificity(template: str) -> tuple[bool, ...]:
    """Sort key of a path template: per segment, a literal (False) before a parameter (True)."""
    return tuple(segment.startswith("{") for segment in template.strip("/").split("/"))


class RouteMethods:
    """The methods each path answers, built on first use from the OpenAPI document's paths
    (every API route, whatever router included it) and the application's plain routes (the
    documentation pages, which the document does not list).

    Where templates overlap (``/v1/chains/port-pairs`` and ``/v1/chains/{object_id}``), the
    most specific one answers, segment by segment a literal before a parameter, as OpenAPI
    says paths match (a concrete path before a templated one): the ``Allow`` of
    ``/v1/chains/port-pairs`` is the collection's, and a ``PUT`` there is a 405, never an
    update of an object named ``port-pairs``."""

    def __init__(
        self, paths: Callable[[], dict[str, dict[str, Any]]], routes: Callable[[], list[BaseRoute]]
    ) -> None:
        self._paths = paths
        self._routes = routes
        self._table: list[tuple[tuple[bool, ...], re.Pattern[str], frozenset[str]]] | None = None
        self._cache: dict[str, str | None] = {}

    def _build(self) -> list[tuple[tuple[bool, ...], re.Pattern[str], frozenset[str]]]:
        table = []
        for template, operations in self._paths().items():
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            methods = frozenset(m.upper() for m in operations)
            table.append((_specificity(template), re.compile(f"^{pattern}$"), methods))
        for route in self._routes():
            if isinstance(route, Route) and route.methods:
                table.append((_specificity(route.path), route.path_regex, frozenset(route.methods)))
        table.sort(key=lambda entry: entry[0])
        return table

    def allow(self, path: str) -> str | None:
        """The ``Allow`` header value for ``path``, or None when no route has that path."""
        try:
            return self._cache[path]
        except KeyError:
            pass
        if self._table is None:
            self._table = self._build()
        methods: set[str] = set()
        best: tuple[bool, ...] | None = None
        for key, regex, route_methods in self._table:  # most specific first
            if best is not None and key != best:
                break
            if regex.match(path):
                best = key
                methods |= route_methods
        value = None
        if methods:
            methods |= {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
            value = ", ".join(m for m in _METHOD_ORDER if m in methods)
        if len(self._cache) >= _ALLOW_CACHE_SIZE:
            self._cache.clear()
        self._cache[path] = value
        return value


class EdgeMiddleware:
    """Authorisation, methods, body limit, request metrics and audit (see module docstring)."""

    def __init__(  # noqa: PLR0917 (built once, by create_app)
        self,
        app: ASGIApp,
        guard: TokenGuard,
        routes: RouteMethods,
        max_body_bytes: int,
        metrics: DaemonMetrics,
        audit: AuditLog | None,
        hot: list[HotRoute] | None = None,
    ) -> None:
        self.app = app
        self.guard = guard
        self.routes = routes
        self.max_body = max_body_bytes
        self.metrics = metrics
        self.audit = audit
        self.hot = hot or []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        begin = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        mutating = method not in SAFE_METHODS
        status = [0]
        captured: list[bytes] = []

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, send_wrapper, method, path, mutating, captured)
        except Exception as exc:
            # Not a fluidedge error (those are answered by the app's handler): an exception
            # nobody mapped. Answer JSON with a reason (507 for a full disk), log the trace.
            if status[0]:
                raise
            _log.exception("%s %s failed", method, path)
            await send_json(send_wrapper, error_status(exc), error_detail(exc))
        finally:
            seconds = time.perf_counter() - begin
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            warm_up = scope.get("fluidedge.warm_up", False)
            if not warm_up:
                # Any token is a valid HTTP method: label unknown ones "OTHER" (bounded series).
                label = method if method in _METHOD_ORDER else "OTHER"
                self.metrics.observe(label, template, status[0], seconds)
            if mutating and self.audit is not None and not warm_up:
                state = scope.get("state", {})
                extra = dict(state.get(AUDIT_KEY, {}))
                if state.get(TENANT_KEY):
                    extra["tenant"] = state[TENANT_KEY]
                self.audit.record(
                    _peer(scope),
                    state.get("fluidedge.presented", Presented.NONE.value),
                    method,
                    path,
                    body_name(b"".join(captured)),
                    status[0],
                    seconds,
                    extra=extra or None,
                )

    async def _handle(  # noqa: PLR0917 (private, one call site)
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        method: str,
        path: str,
        mutating: bool,
        captured: list[bytes],
    ) -> None:
        headers = dict(scope["headers"])
        presented, tenant = self.guard.identify(headers.get(b"authorization"))
        state = scope.setdefault("state", {})
        state[STATE_KEY] = presented is Presented.TOKEN
        state["fluidedge.presented"] = presented.value
        if tenant is not None:
            state[TENANT_KEY] = tenant
            if not self.guard.tenant_may(method, path):
                await send_json(
                    send, 403, f"{method} {path} needs the admin token (tenant token of {tenant})"
                )
                return
        elif presented is not Presented.TOKEN and self.guard.needs_token(method, path):
            why = "missing" if presented is Presented.NONE else "invalid"
            await send_json(
                send,
                401,
                f"{why} bearer token (Authorization: Bearer <token>)",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        allow = self.routes.allow(path)
        if allow is not None:
            if method == "OPTIONS":
                await send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": [(b"allow", allow.encode())],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
            if method not in allow.split(", "):
                await send_json(
                    send,
                    405,
                    f"method {method} not allowed on {path} (allowed: {allow})",
                    [(b"allow", allow.encode())],
                )
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await send_json(send, 400, "invalid Content-Length")
                return
            if declared > self.max_body:
                await send_json(send, 413, self._too_large(declared))
                return
            if mutating:
                receive = _capturing(receive, captured)
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body, size = await _read_body(receive, self.max_body)
            if body is None:
                await send_json(send, 413, self._too_large(size, streamed=True))
                return
            captured.append(body)
            receive = _replaying(body, receive)
        hot = find(self.hot, method, path) if self.hot else None
        if hot is not None:
            await self._hot(scope, receive, send, *hot)
            return
        await self.app(scope, receive, send)

    async def _hot(
        self, scope: Scope, receive: Receive, send: Send, route: HotRoute, params: dict[str, str]
    ) -> None:
        """Serve a hot route (see the module docstring), or hand it to the application."""
        body, size = await _read_body(receive, self.max_body)
        if body is None:  # a Content-Length that lied: the server stops it, we refuse it
            await send_json(send, 413, self._too_large(size, streamed=True))
            return
        scope["route"] = route  # the metrics' route label (route.path, the template)
        try:
            response = await route.handler(scope, params, body)
        except FluidedgeError as exc:  # answered as the application's handler would
            await send_json(send, error_status(exc), error_detail(exc), error_headers(exc))
            return
        if response is None:
            await self.app(scope, _replaying(body, receive), send)
            return
        await response(scope, receive, send)

    def _too_large(self, size: int, *, streamed: bool = False) -> str:
        what = f"more than {self.max_body}" if streamed else str(size)
        return (
            f"request body of {what} bytes exceeds the limit of {self.max_body} bytes "
            "(api.max_body_bytes)"
        )


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return "unix"
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _capturing(receive: Receive, captured: list[bytes]) -> Receive:
    async def wrapped() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            captured.append(message.get("body", b""))
        return message

    return wrapped


async def _read_body(receive: Receive, limit: int) -> tuple[bytes | None, int]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, size
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), size


def _replaying(body: bytes, receive: Receive) -> Receive:
    pending = [body]

    async def wrapped() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return wrapped


SQLITE_FULL = 13


def disk_full(exc: BaseException) -> bool:
    """True if ``exc`` or an exception it was raised from says the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageFull):
            return True
        if isinstance(current, OSError) and current.errno in {errno.ENOSPC, errno.EDQUOT}:
            return True
        if isinstance(current, sqlite3.Error) and (
            getattr(current, "sqlite_errorcode", None) == SQLITE_FULL
            or "disk is full" in str(current)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def error_headers(exc: BaseException) -> list[tuple[bytes, bytes]]:
    if not isinstance(exc, FluidedgeError):
        return []
    return [(ERROR_HEADER.encode(), type(exc).__name__.encode())]


def error_status(exc: BaseException) -> int:
    """The HTTP status answering ``exc``: its kind's, or 507 for a full disk underneath."""
    status = exc.http_status if isinstance(exc, FluidedgeError) else 500
    if status >= 500 and disk_full(exc):
        return StorageFull.http_status
    return status


def error_detail(exc: BaseException) -> str:
    if isinstance(exc, FluidedgeError):
        text = str(exc)
    else:
        text = f"internal error: {type(exc).__name__}: {exc}"
    if disk_full(exc) and not isinstance(exc, StorageFull):
        text = f"no space left under the state directory, nothing was stored ({text})"
    return text
