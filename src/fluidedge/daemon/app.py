"""Build the FastAPI application from the enabled parts.

Cross-cutting behaviour lives here, once: request validation errors answer 400 with a reason
(never 422), fluidedge errors answer with their kind's status, ``/metrics`` concatenates the
parts' Prometheus text, ``/healthz`` says the daemon is up, and every route of every part is
guarded by the bearer token (see :mod:`fluidedge.daemon.auth`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

import fluidedge
from fluidedge.daemon.auth import TokenGuard
from fluidedge.daemon.config import DaemonConfig, resolve_token
from fluidedge.daemon.part import DaemonContext, Part
from fluidedge.daemon.registry import load_factory
from fluidedge.daemon.store import Store
from fluidedge.errors import FluidedgeError


def _validation_reason(exc: RequestValidationError) -> str:
    reasons = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        reasons.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(reasons) or "invalid request"


async def _warm_up(app: FastAPI, token: str, requests: list[tuple[str, str, bytes]]) -> None:
    """Send ``requests`` (method, path, body) through the whole ASGI stack, in process.

    The first request a route serves pays one-off costs (middleware stack built, lazy imports,
    first pass through validation and error handling: several milliseconds). Paying them here,
    before the API listens, keeps them off the first client's request. Parts name harmless
    requests (a rejected body, a read) through an optional ``warm_up_requests()``; answers are
    discarded and failures ignored (a warm-up must never stop the daemon from starting).
    """

    async def send(_message: MutableMapping[str, Any]) -> None:
        return None

    for method, path, body in requests:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"warm-up"),
                (b"authorization", f"Bearer {token}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 0),
        }
        with contextlib.suppress(Exception):
            await app(scope, _receiver(body), send)


def _receiver(body: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    pending = [body]

    async def receive() -> dict[str, Any]:
        chunk = pending.pop() if pending else b""
        return {"type": "http.request", "body": chunk, "more_body": False}

    return receive


def build_context(config: DaemonConfig, store: Store | None = None) -> DaemonContext:
    """Create the store and instantiate every enabled part (not started yet)."""
    context = DaemonContext(config=config, store=store or Store(config.store_path))
    for name, section in config.parts.items():
        factory = load_factory(name)
        context.parts[name] = factory(section, context)
    return context


def create_app(context: DaemonContext, token: str | None = None) -> FastAPI:
    """The daemon's ASGI application for ``context`` (parts are started in its lifespan)."""
    config = context.config
    bearer = token or resolve_token(config.api)
    guard = TokenGuard(bearer, open_reads=config.api.open_reads)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        started: list[Part] = []
        try:
            for part in context.parts.values():
                await part.start()
                started.append(part)
            warm: list[tuple[str, str, bytes]] = [("GET", "/healthz", b"")]
            for part in started:
                warm += getattr(part, "warm_up_requests", list)()
            await _warm_up(_app, bearer, warm)
            yield
        finally:
            for part in reversed(started):
                await part.stop()

    app = FastAPI(
        title="fluidedge",
        version=fluidedge.__version__,
        description="Superfluid mobile-edge node: traffic offloading and instance management.",
        lifespan=lifespan,
    )
    app.state.context = context

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": _validation_reason(exc)})

    @app.exception_handler(FluidedgeError)
    async def _domain_error(_request: Request, exc: FluidedgeError) -> JSONResponse:
        return JSONResponse(status_code=exc.http_status, content={"detail": str(exc)})

    @app.get("/healthz", tags=["daemon"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": fluidedge.__version__, "parts": list(context.parts)}

    @app.get("/metrics", tags=["daemon"], response_class=PlainTextResponse)
    def metrics() -> str:
        return "".join(part.metrics() for part in context.parts.values())

    async def authorised(request: Request) -> None:
        # An ``async`` wrapper: FastAPI runs a plain callable dependency in the thread pool,
        # and that hand-off costs more than the token check on every request.
        guard(request)

    for part in context.parts.values():
        app.include_router(part.router(), dependencies=[Depends(authorised)])
    if config.gui.enabled:  # the web GUI under /ui (its own session login: fluidedge.gui)
        from fluidedge.gui.routes import build_router as build_gui  # noqa: PLC0415 - jinja2

        app.include_router(build_gui(context, bearer, config.gui))
    return app
