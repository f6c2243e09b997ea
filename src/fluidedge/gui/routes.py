"""The GUI's router under ``/ui``: login and logout, assets, the overview, the live streams,
and the page modules (``pages_tof``, ``pages_instances``, ``pages_measure``) mounted on it.

Forms are POST-redirect-GET: a form that fails validation is shown again with status 400 and
each reason at its field; a change that worked redirects (303) to the page showing the result,
with a flash message. Live values are server-sent events (``/ui/live/<topic>``): ``{DOM id:
text}`` of the values that changed, checked every ``live_interval_s`` (less often when a read is
costly); the page's script writes them into the elements with those ids.
"""

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, StreamingResponse

from fluidedge.core.guiconfig import GuiConfig
from fluidedge.core.part import DaemonContext
from fluidedge.gui import pages_instances, pages_measure, pages_tof
from fluidedge.gui.forms import (
    one,
    parse_form,
)
from fluidedge.gui.query import page_number, parse_search
from fluidedge.gui.security import GuiRoute
from fluidedge.gui.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Session,
    same_secret,
)
from fluidedge.gui.web import ASSETS, LIVE_DUTY, PREFIX, STREAM_LIFETIME_S, Form, make_ui


def build_router(context: DaemonContext, token: str, config: GuiConfig) -> APIRouter:
    """The ``/ui`` router for the daemon of ``context`` (``token``: the API's bearer token)."""
    ui = make_ui(context, token, config)
    router = APIRouter(prefix=PREFIX, route_class=GuiRoute, include_in_schema=False)
    node, render, see, call = ui.node, ui.render, ui.see, ui.call
    sessions, auth, size, secure, check_origin = (
        ui.sessions,
        ui.auth,
        ui.size,
        ui.secure,
        ui.check_origin,
    )
    PageSession = Annotated[Session, Depends(ui.page_session)]
    PostedForm = Annotated[Form, Depends(ui.form_session)]

    # ------------------------------------------------------------------ login, assets

    @router.get("/login")
    async def login_page(request: Request) -> HTMLResponse:
        nonce = request.cookies.get(LOGIN_COOKIE) or _nonce()
        response = render(request, None, "login.html", login_csrf=nonce)
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path=f"{PREFIX}/login",
        )
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        check_origin(request)
        data = parse_form(await request.body(), request.headers.get("content-type", ""))
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not same_secret(one(data, "csrf"), cookie):
            raise HTTPException(403, "CSRF token missing or wrong")
        principal = auth.principal(one(data, "token"))
        if principal is None:
            return render(
                request,
                None,
                "login.html",
                401,
                login_csrf=cookie,
                errors={"token": "this token is not the daemon's API token"},
            )
        sessions.drop(request.cookies.get(SESSION_COOKIE))  # a login never reuses a session
        session = sessions.create(principal)
        response = see("/")
        response.set_cookie(
            SESSION_COOKIE,
            session.sid,
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path=PREFIX,
        )
        response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
        return response

    @router.post("/logout")
    async def logout(form: PostedForm) -> Response:
        sessions.drop(form.session.sid)
        response = see("/login")
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @router.get("/static/{name}")
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(404, "no such asset")
        body = resources.files("fluidedge.gui").joinpath("static", name).read_bytes()
        return Response(body, media_type=ASSETS[name], headers={"Cache-Control": "max-age=300"})

    # ------------------------------------------------------------------ overview

    @router.get("")
    async def root() -> Response:
        return see("/")

    @router.get("/")
    async def overview(request: Request, session: PageSession) -> Response:
        live = await call(node.live_overview, session.principal)
        health = await call(node.health)
        stats = await call(node.tof_stats) if node.has("tof") else None
        pools = await call(node.manager().pool_status) if node.has("instances") else []
        return render(
            request,
            session,
            "overview.html",
            active="overview",
            health=health,
            stats=stats,
            pools=pools,
            values=live,
            live=f"{PREFIX}/live/overview",
            shape=live.get("_shape_tof", ""),
        )

    @router.get("/live/{topic}")
    async def live_stream(
        request: Request, topic: str, q: str = "", page: str = "1", name: str = ""
    ) -> StreamingResponse:
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise HTTPException(401, "not logged in")
        read: Callable[[], dict[str, str]]
        if topic == "overview":

            def read() -> dict[str, str]:
                return node.live_overview(session.principal)

        elif topic == "instances":
            number = page_number(page)

            def read() -> dict[str, str]:
                return node.live_instances(session.principal, number, size)

        elif topic == "instance":

            def read() -> dict[str, str]:
                return node.live_instance(session.principal, name)

        elif topic == "tunnels":
            keep, number = parse_search(q), page_number(page)

            def read() -> dict[str, str]:
                return node.live_tunnels(keep, number, size)

        else:
            raise HTTPException(404, "no such live topic")
        sid = session.sid

        async def events() -> AsyncIterator[str]:
            yield "retry: 500\n\n"
            last: dict[str, str] = {}
            ends = time.monotonic() + STREAM_LIFETIME_S
            while time.monotonic() < ends and sessions.get(sid, touch=False) is not None:
                started = time.perf_counter()
                values = await run_in_threadpool(read)
                spent = time.perf_counter() - started
                changed = {k: v for k, v in values.items() if last.get(k) != v}
                if changed:
                    changed["_at"] = f"{time.time():.3f}"
                    yield f"data: {json.dumps(changed)}\n\n"
                    last = values
                # A costly read (a search over 100,000 bearers) is repeated less often: at most
                # a fifth of the time goes to live reads, whatever the table's size.
                await asyncio.sleep(max(config.live_interval_s, LIVE_DUTY * spent))

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
        )

    pages_tof.add_routes(router, ui)
    pages_instances.add_routes(router, ui)
    pages_measure.add_routes(router, ui)

    @router.get("/{rest:path}")
    async def not_found(rest: str) -> Response:
        raise HTTPException(404, "no such page")  # an HTML 404 with the GUI's headers

    return router


def _nonce() -> str:
    return secrets.token_urlsafe(24)
