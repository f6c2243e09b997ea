"""The GUI's routes under ``/ui``: pages, form posts (POST-redirect-GET), live streams, assets.

Every page needs a session (else: to the login page); every POST needs the session's CSRF token
and, when the browser sends one, an ``Origin`` equal to the daemon's. A form that fails
validation is shown again, with status 400 and each reason at its field; a change that worked
redirects (303) to the page showing the result, with a flash message. Live values are
server-sent events (``/ui/live/...``): ``{DOM id: text}`` of the values that changed, checked
every ``live_interval_s``; the page's script writes them into the elements with those ids.
"""

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import httpx
import jinja2
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from markupsafe import Markup
from pydantic import ValidationError

import fluidedge
from fluidedge.daemon.part import DaemonContext
from fluidedge.errors import FluidedgeError
from fluidedge.gui import charts
from fluidedge.gui.config import GuiConfig
from fluidedge.gui.errors import GuiInputError
from fluidedge.gui.forms import (
    FORM,
    domain_error,
    drop_empty,
    field_errors,
    lines,
    one,
    pairs,
    parse_form,
)
from fluidedge.gui.node import Node, PartMissing, idle_text, pinger_text, slug, tunnel_id
from fluidedge.gui.query import Keep, page_number, parse_search
from fluidedge.gui.scope import visible
from fluidedge.gui.security import GuiRoute
from fluidedge.gui.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Authenticator,
    Session,
    Sessions,
    same_secret,
)
from fluidedge.instances.models import (
    KNOWN_CAPABILITIES,
    InstanceRequest,
    NetworkSpec,
    TemplateSpec,
)
from fluidedge.measure import rundir
from fluidedge.measure.report import render_results
from fluidedge.tof.models import NewServiceModel

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


def build_router(context: DaemonContext, token: str, config: GuiConfig) -> APIRouter:
    """The ``/ui`` router for the daemon of ``context`` (``token``: the API's bearer token)."""
    node = Node(context)
    sessions = Sessions(config.session_idle_s)
    auth = Authenticator(token)
    env = _environment()
    router = APIRouter(prefix=PREFIX, route_class=GuiRoute, include_in_schema=False)
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

    PageSession = Annotated[Session, Depends(page_session)]
    PostedForm = Annotated[Form, Depends(form_session)]

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
        request: Request, topic: str, q: str = "", page: str = "1"
    ) -> StreamingResponse:
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise HTTPException(401, "not logged in")
        read: Callable[[], dict[str, str]]
        if topic == "overview":

            def read() -> dict[str, str]:
                return node.live_overview(session.principal)

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

    # ------------------------------------------------------------------ TOF: services

    service_fields = ("name", "serviceIP", "applicationIP")

    def services_page(
        request: Request, session: Session, status: int = 200, **values: Any
    ) -> HTMLResponse:
        tof = node.tof()
        stats = tof.backend.stats()
        return render(
            request,
            session,
            "tof.html",
            status,
            active="tof",
            services=[s.to_api() for s in tof.catalog.all()],
            counters=stats.get("services", {}),
            backend=tof.backend.name,
            **values,
        )

    @router.get("/tof")
    async def tof_page(request: Request, session: PageSession) -> Response:
        response: Response = await call(services_page, request, session)
        return response

    @router.post("/tof/services")
    async def add_service(request: Request, form: PostedForm) -> Response:
        tof = node.tof()
        try:
            body = NewServiceModel.model_validate({k: form.get(k) for k in service_fields})
            await call(tof.catalog.add, body.to_service())
        except (ValidationError, FluidedgeError) as exc:
            return failed_services(request, form, exc)
        form.session.flash(f"service {body.name} added")
        return see("/tof")

    def failed_services(request: Request, form: Form, exc: Exception) -> HTMLResponse:
        errors = (
            field_errors(exc, service_fields)
            if isinstance(exc, ValidationError)
            else domain_error(str(exc), service_fields)
        )
        status = exc.http_status if isinstance(exc, FluidedgeError) else 400
        return services_page(request, form.session, status, errors=errors, form=form.values())

    @router.get("/tof/services/{name}/edit")
    async def edit_service_page(request: Request, name: str, session: PageSession) -> Response:
        service = node.tof().catalog.find(name)
        return render(
            request,
            session,
            "service_edit.html",
            active="tof",
            original=service.name,
            form=service.to_api(),
        )

    @router.post("/tof/services/{name}")
    async def edit_service(request: Request, name: str, form: PostedForm) -> Response:
        tof = node.tof()
        try:
            body = NewServiceModel.model_validate({k: form.get(k) for k in service_fields})
            await call(tof.catalog.update, name, body.to_service())
        except (ValidationError, FluidedgeError) as exc:
            return failed(
                request, form, "service_edit.html", service_fields, exc, active="tof", original=name
            )
        form.session.flash(f"service {name} updated")
        return see("/tof")

    @router.post("/tof/services/{name}/delete")
    async def delete_service(name: str, form: PostedForm) -> Response:
        gone = await call(node.tof().catalog.delete, name)
        form.session.flash(f"service {gone.name} deleted")
        return see("/tof")

    # ------------------------------------------------------------------ TOF: tunnels, events

    @router.get("/tof/tunnels")
    async def tunnels_page(
        request: Request, session: PageSession, q: str = "", page: str = "1"
    ) -> Response:
        started = time.perf_counter()
        error = ""
        keep: Keep | None = None
        number = 1
        try:
            keep, number = parse_search(q), page_number(page)
        except GuiInputError as exc:
            error = str(exc)
        paging, rows = await call(node.tunnel_page, keep, number, size)
        now = time.time()
        for row in rows:
            row["_id"] = tunnel_id(row)
            row["_pinger"] = pinger_text(row)
            row["_idle"] = idle_text(row, now)
        query = {"q": q} if q else {}
        response = render(
            request,
            session,
            "tunnels.html",
            400 if error else 200,
            active="tunnels",
            rows=rows,
            paging=paging,
            q=q,
            search_error=error,
            query=query,
            live=f"{PREFIX}/live/tunnels?{httpx.QueryParams({**query, 'page': paging.page})}",
        )
        response.headers["Server-Timing"] = f"app;dur={1000 * (time.perf_counter() - started):.1f}"
        return response

    @router.post("/tof/tunnels/purge")
    async def purge(form: PostedForm) -> Response:
        n = await call(node.tof().backend.purge)
        form.session.flash(f"{n} tunnel(s) purged; they are re-learned from traffic")
        return see("/tof/tunnels")

    @router.get("/tof/events")
    async def events_page(request: Request, session: PageSession) -> Response:
        events, note = await bearer_events(request)
        columns: list[str] = []
        for event in events:
            columns += [k for k in event if k not in columns]
        return render(
            request,
            session,
            "events.html",
            active="tof",
            events=events[-500:][::-1],
            columns=columns[:10],
            note=note,
        )

    async def bearer_events(request: Request) -> tuple[list[dict[str, Any]], str]:
        """The TOF's ``GET /tunnels/events`` when this build has it (read in process)."""
        node.tof()
        transport = httpx.ASGITransport(app=request.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
            answer = await client.get(
                "/tunnels/events", headers={"Authorization": f"Bearer {token}"}
            )
        if answer.status_code in (404, 405):
            return [], "this TOF build has no bearer-event log (GET /tunnels/events)"
        if answer.status_code != 200:
            return [], f"GET /tunnels/events answered {answer.status_code}"
        data = answer.json()
        if isinstance(data, dict):
            data = data.get("events", [])
        events = [e if isinstance(e, dict) else {"event": e} for e in data or []]
        return events, ""

    # ------------------------------------------------------------------ instances

    @router.get("/instances")
    async def instances_page(request: Request, session: PageSession) -> Response:
        manager = node.manager()
        views = [
            v for v in await call(manager.list_instances) if visible(session.principal, v.labels)
        ]
        return render(
            request,
            session,
            "instances.html",
            active="instances",
            instances=views,
            charts={v.name: charts.breakdown(v.timing.model_dump()) for v in views},
            pools=await call(manager.pool_status),
            templates=sorted(manager.templates),
            values=await call(node.live_overview, session.principal),
            live=f"{PREFIX}/live/overview",
        )

    def instance_fields(template: Any) -> list[str]:
        fields = ["name", "template", "env", "labels", "placement", "cold", "wait_ready"]
        fields += [f"resources.{k}" for k in ("cpus", "cpu_limit", "memory_mb", "pids")]
        for iface in template.interfaces:
            fields += [f"interfaces.{iface.name}.addresses", f"interfaces.{iface.name}.gateway"]
        return fields

    @router.get("/instances/new")
    async def new_instance_page(
        request: Request, session: PageSession, template: str = ""
    ) -> Response:
        manager = node.manager()
        chosen = manager.get_template(template) if template else None
        return render(
            request,
            session,
            "instance_new.html",
            active="instances",
            templates=sorted(manager.templates),
            template=chosen,
            form={"wait_ready": "on"},
        )

    @router.post("/instances")
    async def create_instance(request: Request, form: PostedForm) -> Response:
        manager = node.manager()
        template = manager.get_template(form.get("template"))
        fields = instance_fields(template)
        try:
            body = instance_body(form, template)
            req = InstanceRequest.model_validate(body)
            view = await call(manager.create_instance, req, time.perf_counter())
        except GuiInputError as exc:
            return render_new(request, form, template, {FORM: str(exc)}, 400)
        except (ValidationError, FluidedgeError) as exc:
            return failed(
                request,
                form,
                "instance_new.html",
                fields,
                exc,
                active="instances",
                templates=sorted(manager.templates),
                template=template,
            )
        form.session.flash(
            f"instance {view.name} created ({view.path}, {view.timing.total:.2f} ms)"
        )
        return see(f"/instances/{view.name}")

    def render_new(
        request: Request, form: Form, template: Any, errors: dict[str, str], status: int
    ) -> HTMLResponse:
        return render(
            request,
            form.session,
            "instance_new.html",
            status,
            active="instances",
            templates=sorted(node.manager().templates),
            template=template,
            errors=errors,
            form=form.values(),
        )

    @router.get("/instances/{name}")
    async def instance_page(request: Request, name: str, session: PageSession) -> Response:
        manager = node.manager()
        view = (await call(manager.get_instance, name)).view()
        if not visible(session.principal, view.labels):
            raise PartMissing(f"instance {name!r} does not exist")
        return render(
            request,
            session,
            "instance.html",
            active="instances",
            inst=view,
            chart=charts.breakdown(view.timing.model_dump()),
            logs=await call(manager.logs, name),
            values=await call(node.live_overview, session.principal),
            live=f"{PREFIX}/live/overview",
        )

    @router.post("/instances/{name}/{action}")
    async def instance_action(name: str, action: str, form: PostedForm) -> Response:
        manager = node.manager()
        if action == "pause":
            await call(manager.pause, name)
        elif action == "resume":
            await call(manager.resume, name)
        elif action == "delete":
            await call(manager.delete_instance, name)
            form.session.flash(f"instance {name} deleted")
            return see("/instances")
        else:
            raise HTTPException(404, "no such action")
        form.session.flash(f"instance {name}: {action}d")
        return see(f"/instances/{name}")

    # ------------------------------------------------------------------ templates

    template_fields = (
        "name",
        "description",
        "command",
        "env",
        "files",
        "capabilities",
        "resources.cpus",
        "resources.memory_mb",
        "resources.pids",
        "interfaces",
        "readiness.kind",
        "readiness.port",
        "readiness.path",
        "pool.size",
        "labels",
    )

    @router.get("/templates")
    async def templates_page(request: Request, session: PageSession) -> Response:
        return render_templates(request, session)

    def render_templates(
        request: Request, session: Session, status: int = 200, **values: Any
    ) -> HTMLResponse:
        manager = node.manager()
        shown = [
            manager.templates[n]
            for n in sorted(manager.templates)
            if visible(session.principal, manager.templates[n].labels)
        ]
        values.setdefault("form", {"readiness.kind": "started", "pool.size": "2"})
        return render(
            request,
            session,
            "templates.html",
            status,
            active="templates",
            templates=shown,
            networks=sorted(manager.networks),
            capabilities=sorted(KNOWN_CAPABILITIES),
            **values,
        )

    @router.get("/templates/{name}")
    async def template_page(request: Request, name: str, session: PageSession) -> Response:
        spec = node.manager().get_template(name)
        return render(
            request,
            session,
            "inspect.html",
            active="templates",
            kind="template",
            name=name,
            body=spec.model_dump_json(indent=2),
            delete=f"/templates/{name}/delete",
        )

    @router.post("/templates")
    async def create_template(request: Request, form: PostedForm) -> Response:
        manager = node.manager()
        try:
            spec = TemplateSpec.model_validate(template_body(form))
            await call(manager.create_template, spec)
        except GuiInputError as exc:
            errors = {FORM: str(exc)}
            return render_templates(request, form.session, 400, errors=errors, form=form.values())
        except (ValidationError, FluidedgeError) as exc:
            errors = (
                field_errors(exc, template_fields)
                if isinstance(exc, ValidationError)
                else domain_error(str(exc), template_fields)
            )
            status = exc.http_status if isinstance(exc, FluidedgeError) else 400
            return render_templates(
                request, form.session, status, errors=errors, form=form.values()
            )
        form.session.flash(f"template {spec.name} created")
        return see("/templates")

    @router.post("/templates/{name}/delete")
    async def delete_template(name: str, form: PostedForm) -> Response:
        await call(node.manager().delete_template, name)
        form.session.flash(f"template {name} deleted")
        return see("/templates")

    # ------------------------------------------------------------------ networks

    network_fields = ("name", "bridge", "netns", "subnet")

    def render_networks(
        request: Request, session: Session, status: int = 200, **values: Any
    ) -> HTMLResponse:
        manager = node.manager()
        return render(
            request,
            session,
            "networks.html",
            status,
            active="networks",
            networks=[manager.networks[n] for n in sorted(manager.networks)],
            **values,
        )

    @router.get("/networks")
    async def networks_page(request: Request, session: PageSession) -> Response:
        return render_networks(request, session)

    @router.get("/networks/{name}")
    async def network_page(request: Request, name: str, session: PageSession) -> Response:
        spec = node.manager().get_network(name)
        return render(
            request,
            session,
            "inspect.html",
            active="networks",
            kind="network",
            name=name,
            body=spec.model_dump_json(indent=2),
            delete=f"/networks/{name}/delete",
        )

    @router.post("/networks")
    async def create_network(request: Request, form: PostedForm) -> Response:
        manager = node.manager()
        try:
            spec = NetworkSpec.model_validate(drop_empty({k: form.get(k) for k in network_fields}))
            await call(manager.create_network, spec)
        except (ValidationError, FluidedgeError) as exc:
            errors = (
                field_errors(exc, network_fields)
                if isinstance(exc, ValidationError)
                else domain_error(str(exc), network_fields)
            )
            status = exc.http_status if isinstance(exc, FluidedgeError) else 400
            return render_networks(request, form.session, status, errors=errors, form=form.values())
        form.session.flash(f"network {spec.name} created")
        return see("/networks")

    @router.post("/networks/{name}/delete")
    async def delete_network(name: str, form: PostedForm) -> Response:
        await call(node.manager().delete_network, name)
        form.session.flash(f"network {name} deleted")
        return see("/networks")

    # ------------------------------------------------------------------ measurements

    def runs() -> dict[str, tuple[str, Path]]:
        return {path.name: (kind, path) for kind, path in rundir.run_dirs(config.runs_dir)}

    @router.get("/measurements")
    async def measurements_page(request: Request, session: PageSession) -> Response:
        listing = []
        for name, (kind, path) in sorted((await call(runs)).items(), reverse=True):
            results = _read_results(path)
            listing.append(
                {
                    "name": name,
                    "kind": kind,
                    "created": results.get("created", ""),
                    "elapsed": results.get("elapsed_s"),
                    "figures": len(results.get("figures", [])),
                    "interrupted": bool(results.get("interrupted")),
                }
            )
        return render(
            request,
            session,
            "measurements.html",
            active="measurements",
            runs=listing,
            root=str(config.runs_dir.resolve()),
        )

    @router.get("/measurements/{run}")
    async def run_page(request: Request, run: str, session: PageSession) -> Response:
        found = (await call(runs)).get(run)
        if found is None:
            raise HTTPException(404, f"no run {run!r} under {config.runs_dir}")
        kind, path = found
        results = _read_results(path)
        title, tables = render_results(kind, results)
        files = sorted(f.name for f in path.iterdir() if f.is_file() and f.suffix in RUN_FILES)
        figures = [f for f in results.get("figures", []) if f in files]
        return render(
            request,
            session,
            "run.html",
            active="measurements",
            run=run,
            kind=kind,
            title=title,
            tables=Markup(tables),  # noqa: S704 - measure.report escapes every value
            results=results,
            figures=figures,
            files=files,
            config_text=json.dumps(results.get("config"), indent=2, default=str),
        )

    @router.get("/measurements/{run}/files/{name}")
    async def run_file(run: str, name: str, session: PageSession) -> Response:
        found = runs().get(run)
        if found is None:
            raise HTTPException(404, "no such run")
        path = found[1]
        listed = {f.name: f for f in path.iterdir() if f.is_file() and f.suffix in RUN_FILES}
        if name not in listed:  # names are looked up, never joined: no traversal
            raise HTTPException(404, "no such file in this run")
        media = RUN_FILES[listed[name].suffix]
        headers = {"Content-Disposition": f'inline; filename="{name}"'}
        return Response(listed[name].read_bytes(), media_type=media, headers=headers)

    @router.get("/{rest:path}")
    async def not_found(rest: str) -> Response:
        raise HTTPException(404, "no such page")  # an HTML 404 with the GUI's headers

    return router


def _nonce() -> str:
    return secrets.token_urlsafe(24)


def _read_results(path: Path) -> dict[str, Any]:
    try:
        data = rundir.read_json(path / "results.json")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def instance_body(form: Form, template: Any) -> dict[str, Any]:
    """The ``POST /v1/instances`` body the instance form describes (built from the template's
    interfaces and resources)."""
    interfaces: dict[str, Any] = {}
    for iface in template.interfaces:
        addresses = form.get(f"interfaces.{iface.name}.addresses").replace(",", " ").split()
        gateway = form.get(f"interfaces.{iface.name}.gateway").strip()
        if addresses or gateway:
            interfaces[iface.name] = drop_empty({"addresses": addresses, "gateway": gateway})
    resources = drop_empty(
        {k: form.get(f"resources.{k}").strip() for k in ("cpus", "cpu_limit", "memory_mb", "pids")}
    )
    body: dict[str, Any] = {
        "name": form.get("name").strip(),
        "template": template.name,
        "interfaces": interfaces,
        "resources": resources,
        "env": pairs(form.get("env")),
        "labels": pairs(form.get("labels")),
        "cold": form.get("cold") == "on",
        "wait_ready": form.get("wait_ready") == "on",
    }
    if form.get("placement"):
        body["placement"] = form.get("placement")
    return body


def template_body(form: Form) -> dict[str, Any]:
    """The ``POST /v1/templates`` body the template form describes."""
    interfaces = []
    for line in lines(form.get("interfaces")):
        name, _, network = line.partition(" ")
        interfaces.append({"name": name.strip(), "network": network.strip()})
    readiness = drop_empty(
        {
            "kind": form.get("readiness.kind"),
            "port": form.get("readiness.port").strip(),
            "path": form.get("readiness.path").strip(),
        }
    )
    return drop_empty(
        {
            "name": form.get("name").strip(),
            "description": form.get("description"),
            "command": lines(form.get("command")),
            "env": pairs(form.get("env")),
            "files": pairs(form.get("files")),
            "capabilities": form.data.get("capabilities", []),
            "resources": drop_empty(
                {k: form.get(f"resources.{k}").strip() for k in ("cpus", "memory_mb", "pids")}
            ),
            "interfaces": interfaces,
            "readiness": readiness,
            "pool": drop_empty({"size": form.get("pool.size").strip()}),
            "labels": pairs(form.get("labels")),
        }
    ) | {"command": lines(form.get("command"))}
