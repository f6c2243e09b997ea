"""Build the FastAPI application from the enabled parts.

Cross-cutting behaviour lives here, once: request validation errors answer 400 with a reason
(never 422), fluidedge errors answer with their kind's status (507 when a full disk is
underneath), ``/metrics`` is the ``prometheus_client`` exposition of the daemon and its parts
(:mod:`fluidedge.daemon.metrics`), ``/healthz`` says the daemon is up, and every request goes
through the edge middleware (:mod:`fluidedge.daemon.edge`: bearer token, methods, body limit,
audit), which also serves the parts' hot routes (an optional ``hot_routes()``,
:mod:`fluidedge.core.hot`). The OpenAPI document is rewritten to say so
(:mod:`fluidedge.core.openapi`).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

import fluidedge
from fluidedge.core import openapi, rows
from fluidedge.core.auth import TokenGuard
from fluidedge.core.config import DaemonConfig, resolve_token
from fluidedge.core.hot import HotRoute
from fluidedge.core.openapi import ERROR_HEADER
from fluidedge.core.part import DaemonContext, Part
from fluidedge.core.store import Store, StoreError
from fluidedge.daemon.audit import AuditLog
from fluidedge.daemon.edge import EdgeMiddleware, RouteMethods, error_detail, error_status
from fluidedge.daemon.metrics import CONTENT_TYPE, DaemonMetrics
from fluidedge.daemon.registry import PART_FACTORIES, load_factory
from fluidedge.daemon.store_api import build_router as build_store_router
from fluidedge.errors import FluidedgeError
from fluidedge.tenants.api import build_router as build_tenants_router
from fluidedge.tenants.service import TenantService

# FastAPI >= 0.165 instruments every request with OpenTelemetry unless told not to (see
# create_app); older releases have no such option.
_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


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
            "fluidedge.warm_up": True,
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
    if store is None:
        store = Store(config.store_path, synchronous=config.store_synchronous)
    context = DaemonContext(config=config, store=store)
    # Before the parts: their routes scope by ownership, and admission reads the quotas.
    context.tenants = TenantService(store, config.admission)
    # The registry's order is the start order whatever the config file's table order: the TOF
    # starts after the instance manager it asks for on-demand instances (docs/superfluid.md).
    order = list(PART_FACTORIES)
    for name, section in sorted(
        config.parts.items(), key=lambda item: order.index(item[0]) if item[0] in order else -1
    ):
        factory = load_factory(name)
        context.parts[name] = factory(section, context)
    return context


def create_app(
    context: DaemonContext, token: str | None = None, *, audit: AuditLog | None = None
) -> FastAPI:
    """The daemon's ASGI application for ``context`` (parts are started in its lifespan).

    ``audit``: where mutating calls are recorded (the server opens it under state_dir; None
    for in-process test apps).
    """
    config = context.config
    bearer = token or resolve_token(config.api)
    # The web GUI (/ui) authenticates its own requests: a session from a token login, CSRF.
    gui_prefix = ("/ui",) if config.gui.enabled else ()
    # Parts whose routes authenticate their own callers (Mp1: app instances' tokens).
    own_auth = gui_prefix + tuple(
        prefix for part in context.parts.values() for prefix in getattr(part, "own_auth", ())
    )
    tenants = context.tenants
    if not isinstance(tenants, TenantService):
        tenants = context.tenants = TenantService(context.store, config.admission)
    guard = TokenGuard(
        bearer,
        open_reads=config.api.open_reads,
        own_auth=own_auth,
        tenant_resolver=tenants.resolve,
    )
    metrics = DaemonMetrics({name: part.metrics for name, part in context.parts.items()})

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        started: list[Part] = []
        try:
            for part in context.parts.values():
                try:
                    await part.start()
                except FluidedgeError as exc:
                    context.startup_error = exc
                    raise
                started.append(part)
            context.all_started.set()
            warm: list[tuple[str, str, bytes]] = [("GET", "/healthz", b"")]
            for part in started:
                warm += getattr(part, "warm_up_requests", list)()
            await _warm_up(_app, bearer, warm)
            yield
        finally:
            for part in reversed(started):
                await part.stop()
            # Fold the WAL into the database file: a stopped daemon leaves one self-contained
            # file (uvicorn re-raises SIGTERM after this, so nothing later runs).
            context.store.checkpoint()

    app = FastAPI(
        title="fluidedge",
        version=fluidedge.__version__,
        description="Superfluid mobile-edge node: traffic offloading and instance management.",
        lifespan=lifespan,
        # No OpenTelemetry here: FastAPI's native instrumentation would otherwise look up the
        # global tracer, meter and logger providers on every request (tens of µs each time,
        # more than a warm pause costs the daemon itself).
        **_NO_TELEMETRY,
    )
    app.state.context = context
    context.app = app
    app.state.metrics = metrics

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": _validation_reason(exc)})

    @app.exception_handler(FluidedgeError)
    async def _domain_error(_request: Request, exc: FluidedgeError) -> JSONResponse:
        # The error's class as a header: what a program (another node forwarding a creation)
        # tells apart without parsing the sentence in "detail".
        return JSONResponse(
            status_code=error_status(exc),
            content={"detail": error_detail(exc)},
            headers={ERROR_HEADER: type(exc).__name__},
        )

    @app.get("/healthz", tags=["daemon"])
    def healthz() -> dict[str, Any]:
        # "degraded" when the store refuses writes (its files were removed or replaced).
        refused = context.store.unavailable
        try:
            set_aside: int | None = rows.count(context.store)
        except StoreError:
            set_aside = None
        # A part that waits for the host (the TOF's data plane for its namespace or
        # interfaces: fluidedge.tof.part) says why; the rest of the daemon serves.
        waiting = {
            name: reason
            for name, part in context.parts.items()
            if isinstance(reason := getattr(part, "waiting", None), str)
        }
        return {
            "status": "degraded" if refused or waiting else "ok",
            "version": fluidedge.__version__,
            "parts": list(context.parts),
            "waiting": waiting,
            "store": refused or "ok",
            # Rows a start could not read back (fluidedge.core.rows): their objects are not
            # served until declared again; `fluidedge state set-aside` lists them.
            "set_aside_rows": set_aside,
        }

    @app.get(
        "/metrics",
        tags=["daemon"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
    )
    def metrics_route() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    app.include_router(build_tenants_router(context))
    app.include_router(build_store_router(context))
    for part in context.parts.values():
        app.include_router(part.router())
    if config.gui.enabled:  # the web GUI under /ui (its own session login: fluidedge.gui)
        from fluidedge.gui.routes import build_router as build_gui  # noqa: PLC0415 - jinja2

        app.include_router(build_gui(context, bearer, config.gui))

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = openapi.rewrite(FastAPI.openapi(app), open_reads=config.api.open_reads)
            for part in context.parts.values():  # a part's own corrections (Mp1's security)
                getattr(part, "rewrite_openapi", lambda _doc: None)(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]
    hot: list[HotRoute] = []
    for part in context.parts.values():  # after part.router(): handlers share its state
        hot += getattr(part, "hot_routes", list)()
    app.add_middleware(
        EdgeMiddleware,
        guard=guard,
        routes=RouteMethods(lambda: schema()["paths"], lambda: app.routes),
        max_body_bytes=config.api.max_body_bytes,
        metrics=metrics,
        audit=audit,
        hot=hot,
    )
    return app
