"""The TOF pages: services (add, edit, delete), tunnels (search, pages, purge), bearer events."""

import time
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from fluidedge.errors import FluidedgeError
from fluidedge.gui.errors import GuiInputError
from fluidedge.gui.forms import (
    domain_error,
    field_errors,
)
from fluidedge.gui.node import idle_text, pinger_text, tunnel_id
from fluidedge.gui.query import Keep, page_number, parse_search
from fluidedge.gui.session import (
    Session,
)
from fluidedge.gui.web import PREFIX, Form, Ui
from fluidedge.tof.models import NewServiceModel


def add_routes(router: APIRouter, ui: Ui) -> None:
    node, render, see, call, failed = ui.node, ui.render, ui.see, ui.call, ui.failed
    size, token = ui.size, ui.token
    PageSession = Annotated[Session, Depends(ui.page_session)]
    PostedForm = Annotated[Form, Depends(ui.form_session)]

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
