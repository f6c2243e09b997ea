"""The GUI's plumbing shared by its page modules: sessions, rendering, form checks.

A page needs a session (else: to the login page); a POST needs the session's CSRF token and,
when the browser sends one, an ``Origin`` equal to the daemon's. :class:`Ui` bundles what the
page modules (``pages_tof``, ``pages_instances``, ``pages_measure``) use: the node, the
sessions, ``render`` (a template with the session's CSRF token and flash messages), ``see`` (a
303 to another page), ``failed`` (a form shown again with each reason at its field) and the
``page_session``/``form_session`` dependencies.
"""

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

import fluidedge
from fluidedge.core.guiconfig import GuiConfig
from fluidedge.core.part import DaemonContext
from fluidedge.errors import FluidedgeError
from fluidedge.gui.forms import (
    domain_error,
    field_errors,
    one,
    parse_form,
)
from fluidedge.gui.node import Node, slug
from fluidedge.gui.session import (
    SESSION_COOKIE,
    Authenticator,
    Session,
    Sessions,
    same_secret,
)

PREFIX = "/ui"
STREAM_LIFETIME_S = 15.0  # an EventSource reconnects by itself; a daemon stop never waits long
LIVE_DUTY = 4.0  # sleep at least this many times a live read's duration between reads
ASSETS = {"app.css": "text/css; charset=utf-8", "live.js": "text/javascript; charset=utf-8"}
RUN_FILES = {".png": "image/png", ".csv": "text/csv; charset=utf-8", ".json": "application/json"}
NAV = (
    ("overview", "Overview", ""),
    ("tof", "TOF", "/tof"),
    ("tunnels", "Tunnels", "/tof/tunnels"),
    ("instances", "Instances", "/instances"),
    ("templates", "Templates", "/templates"),
    ("networks", "Networks", "/networks"),
    ("measurements", "Measurements", "/measurements"),
)


@dataclass
class Form:
    """A submitted form, once its session and CSRF token have been checked."""

    session: Session
    data: dict[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        return one(self.data, name, default)

    def values(self) -> dict[str, str]:
        return {k: v[-1] for k, v in self.data.items() if k != "csrf"}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("fluidedge.gui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v: f"{v:,}" if isinstance(v, int) else v
    env.filters["ms"] = lambda v: f"{float(v):.2f}" if isinstance(v, int | float) else "-"
    env.filters["slug"] = slug
    env.filters["when"] = lambda v: (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v))
        if isinstance(v, int | float) and v > 1e9
        else "-"
    )
    return env


@dataclass
class Ui:
    """What every page module uses (built once per router by :func:`make_ui`)."""

    node: Node
    sessions: Sessions
    auth: Authenticator
    config: GuiConfig
    token: str
    size: int
    context: DaemonContext
    secure: Callable[[Request], bool]
    render: Callable[..., HTMLResponse]
    see: Callable[[str], RedirectResponse]
    page_session: Callable[[Request], Awaitable[Session]]
    form_session: Callable[[Request], Awaitable[Form]]
    check_origin: Callable[[Request], None]
    call: Callable[..., Awaitable[Any]]
    failed: Callable[..., HTMLResponse]


def make_ui(context: DaemonContext, token: str, config: GuiConfig) -> Ui:
    node = Node(context)
    sessions = Sessions(config.session_idle_s)
    auth = Authenticator(token)
    env = _environment()
    size = config.page_size

    # ------------------------------------------------------------------ plumbing

    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    def render(
        request: Request,
        session: Session | None,
        view: str,
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        values.setdefault("errors", {})
        values.setdefault("form", {})
        values.setdefault("live", "")
        text = env.get_template(view).render(
            session=session,
            csrf=session.csrf if session else "",
            flashes=session.take_flashes() if session else [],
            nav=NAV,
            prefix=PREFIX,
            version=fluidedge.__version__,
            parts=context.parts,
            **values,
        )
        return HTMLResponse(text, status_code=status)

    def see(path: str) -> RedirectResponse:
        return RedirectResponse(PREFIX + path, status_code=303)

    async def page_session(request: Request) -> Session:
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise HTTPException(303, "log in first", headers={"Location": f"{PREFIX}/login"})
        return session

    async def form_session(request: Request) -> Form:
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise HTTPException(401, "not logged in")
        check_origin(request)
        data = parse_form(await request.body(), request.headers.get("content-type", ""))
        if not same_secret(one(data, "csrf"), session.csrf):
            raise HTTPException(403, "CSRF token missing or wrong")
        return Form(session, data)

    def check_origin(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise HTTPException(403, "cross-origin form post refused")

    async def call(fn: Callable[..., Any], *args: Any) -> Any:
        return await run_in_threadpool(fn, *args)

    def failed(
        request: Request,
        form: Form,
        view: str,
        fields: Sequence[str],
        exc: Exception,
        **values: Any,
    ) -> HTMLResponse:
        if isinstance(exc, ValidationError):
            errors, status = field_errors(exc, fields), 400
        elif isinstance(exc, FluidedgeError):
            errors, status = domain_error(str(exc), fields), exc.http_status
        else:
            raise exc
        return render(
            request, form.session, view, status, errors=errors, form=form.values(), **values
        )

    return Ui(
        node=node,
        sessions=sessions,
        auth=auth,
        config=config,
        token=token,
        size=size,
        context=context,
        secure=secure,
        render=render,
        see=see,
        page_session=page_session,
        form_session=form_session,
        check_origin=check_origin,
        call=call,
        failed=failed,
    )
