"""The instance manager's pages: instances (created from a template's form, paused, resumed,
deleted; breakdown chart, logs), pools, templates and networks."""

import time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from fluidedge.errors import FluidedgeError
from fluidedge.gui import charts
from fluidedge.gui.errors import GuiInputError
from fluidedge.gui.forms import (
    FORM,
    domain_error,
    drop_empty,
    field_errors,
    lines,
    number,
    pairs,
)
from fluidedge.gui.node import PartMissing
from fluidedge.gui.query import page_number
from fluidedge.gui.scope import visible
from fluidedge.gui.session import (
    Session,
)
from fluidedge.gui.web import PREFIX, Form, Ui
from fluidedge.instances.models import (
    InstanceRequest,
    NetworkSpec,
    TemplateSpec,
)
from fluidedge.linux.capabilities import KNOWN_CAPABILITIES
from fluidedge.tenants.scope import ADMIN


def add_routes(router: APIRouter, ui: Ui) -> None:
    node, render, see, call, failed = ui.node, ui.render, ui.see, ui.call, ui.failed
    size = ui.size
    PageSession = Annotated[Session, Depends(ui.page_session)]
    PostedForm = Annotated[Form, Depends(ui.form_session)]

    # ------------------------------------------------------------------ instances

    @router.get("/instances")
    async def instances_page(request: Request, session: PageSession, page: str = "1") -> Response:
        manager = node.manager()
        paging, views = await call(node.instance_page, session.principal, page_number(page), size)
        return render(
            request,
            session,
            "instances.html",
            active="instances",
            instances=views,
            paging=paging,
            pools=await call(manager.pool_status),
            templates=sorted(manager.templates),
            values=await call(node.live_overview, session.principal),
            live=f"{PREFIX}/live/instances?page={paging.page}",
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
            # The host's admission (pids bounds, default CPU cap) holds for the GUI too.
            scoped = getattr(node.context.parts.get("instances"), "scoped", None)
            if scoped is None:
                view = await call(manager.create_instance, req, time.perf_counter())
            else:
                with scoped.admit_instance(ADMIN, req, None) as checked:
                    view = await call(manager.create_instance, checked, time.perf_counter())
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
            values=await call(node.live_instance, session.principal, name),
            live=f"{PREFIX}/live/instance?{urlencode({'name': name})}",
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


def instance_body(form: Form, template: Any) -> dict[str, Any]:
    """The ``POST /v1/instances`` body the instance form describes (built from the template's
    interfaces and resources)."""
    interfaces: dict[str, Any] = {}
    for iface in template.interfaces:
        addresses = form.get(f"interfaces.{iface.name}.addresses").replace(",", " ").split()
        gateway = form.get(f"interfaces.{iface.name}.gateway").strip()
        if addresses or gateway:
            interfaces[iface.name] = drop_empty({"addresses": addresses, "gateway": gateway})
    resources = {
        k: number(form.get(f"resources.{k}"))
        for k in ("cpus", "cpu_limit", "memory_mb", "pids")
        if form.get(f"resources.{k}").strip()
    }
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
            "port": number(form.get("readiness.port")),
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
            "resources": {
                k: number(form.get(f"resources.{k}"))
                for k in ("cpus", "memory_mb", "pids")
                if form.get(f"resources.{k}").strip()
            },
            "interfaces": interfaces,
            "readiness": readiness,
            "pool": drop_empty({"size": number(form.get("pool.size"))}),
            "labels": pairs(form.get("labels")),
        }
    ) | {"command": lines(form.get("command"))}
