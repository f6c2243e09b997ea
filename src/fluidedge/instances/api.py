"""REST routes of the instance manager (under ``/v1``).

``POST /v1/instances`` stamps the request's arrival in a dependency (before body validation) so
the ``accept`` phase of the timing breakdown covers validation, and runs the execute phase in
the thread pool (a cold create or a readiness wait must not block the event loop), except
when the request is *quick* (a warm shell is ready and readiness is at most "process started").
Pause and resume run inline too, their freezer wait bounded to ``INLINE_FREEZER_WAIT``, and
finish in the thread pool if the cgroup takes longer to settle.

These three are also *hot routes* (:func:`hot_routes`, :mod:`fluidedge.core.hot`): the daemon's
edge serves them with the same code, without FastAPI's router and dependency machinery, when
the request is plain (no query string, a body that validates); anything else, e.g. a body
that FastAPI must answer with its 400, goes to the routes below.

Template reads without the token (allowed by ``api.open_reads``) show ``env`` values and
``files`` contents as ``<redacted>``: they may carry secrets.

Tenants (:mod:`fluidedge.tenants`): every route scopes by ownership (a tenant sees its own
instances, templates and networks, and the built-in templates read-only; another tenant's is
a 404), and ``POST /v1/instances`` goes through admission control (tenant quota, host pids,
default CPU cap: :mod:`fluidedge.tenants.admission`) before the manager sees it. The admin
may create for a tenant with ``?tenant=NAME``. Each route declares the error
statuses it can answer (the daemon adds the cross-cutting ones, see
:mod:`fluidedge.core.openapi`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import TypeAdapter, ValidationError
from starlette.types import Receive, Send

from fluidedge.core.auth import redact_values
from fluidedge.core.hot import HotRoute, Scope
from fluidedge.core.openapi import error_responses
from fluidedge.core.paging import MAX_PAGE, link_headers
from fluidedge.instances.errors import FreezerBusy, WrongState
from fluidedge.instances.images.api import build_image_router
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import (
    NAME_PATTERN,
    InstanceRequest,
    InstanceView,
    NetworkSpec,
    OrphanView,
    PoolStatus,
    TemplateSpec,
)
from fluidedge.instances.routers_api import build_routers_router
from fluidedge.instances.scoping import Scoped
from fluidedge.instances.writer import Writer


async def _arrival() -> float:
    # ``async`` so FastAPI calls it on the event loop: a plain function would be run in the
    # thread pool, stamping the arrival late and paying a thread hand-off on every request.
    return time.perf_counter()


# How long a pause/resume may wait for the freezer on the event loop before the wait moves to
# the thread pool (a task in uninterruptible sleep can keep a cgroup FREEZING for a while).
INLINE_FREEZER_WAIT = 0.005


def _json(
    view: InstanceView,
    writer: Writer,
    status_code: int = status.HTTP_200_OK,
    after: list[Callable[[], None]] | None = None,
) -> Response:
    # The view is already a validated InstanceView: serialise it once, directly, rather than
    # letting FastAPI dump it, re-validate the dump against the response model and encode it
    # again (the schema still says InstanceView through the route's ``response_model``).
    # Once the answer is sent (or failed to go out), ``after`` runs (a new instance leaves the
    # idle class it started in, its metrics and log line) and the store writer may commit the
    # call's follow-up (the row's new state or timing): not before, where they would compete
    # with the answer for the GIL and the CPU.
    return _Answer(
        content=view.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        after=[*(after or ()), writer.kick],
    )


_log = logging.getLogger("fluidedge.instances")


class _Answer(Response):
    """A response that runs ``after`` once it is out, or failed to go out."""

    def __init__(self, *args: Any, after: list[Callable[[], None]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.after = after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            for call in self.after:
                try:
                    call()
                except Exception:  # the answer is out: log it, run the others
                    _log.exception("instances: a follow-up of an answer failed")


async def _freezer_op(manager: Manager, op: Callable[..., InstanceView], name: str) -> Response:
    """Pause or resume inline with a bounded freezer wait; finish in the thread pool if the
    cgroup is slow to settle (the freezer usually settles in ~0.15 ms, less than a hand-off)."""
    after: list[Callable[[], None]] = []
    try:
        view = op(name, timeout=INLINE_FREEZER_WAIT, after_answer=after)
    except FreezerBusy:
        view = await run_in_threadpool(functools.partial(op, name, after_answer=after))
    return _json(view, manager.writer, after=after)


async def _create(  # noqa: PLR0917 (private: the two create routes)
    manager: Manager,
    sc: Scoped,
    http: Request,
    request: InstanceRequest,
    tenant: str | None,
    arrived: float,
) -> Response:
    """``POST /v1/instances`` once the body is an :class:`InstanceRequest` (both routes)."""
    if manager.placer is not None or request.node is not None:
        forwarded = await _place(manager, sc, http, request, tenant)
        if forwarded is not None:
            return forwarded
    admitted = sc.admit_instance(sc.who(http), request, tenant)
    after: list[Callable[[], None]] = []
    try:
        with admitted as checked:
            if manager.is_quick(checked):
                # Warm shell + no network wait: a few hundred µs of work, cheaper inline than
                # the thread-pool hand-off (which costs more than the work itself on a busy
                # host).
                view = manager.create_instance(checked, arrived, after_answer=after)
            else:
                view = await run_in_threadpool(
                    functools.partial(manager.create_instance, checked, arrived, after_answer=after)
                )
    except BaseException:
        for call in after:  # created, then refused by admission's exit: no answer to wait for
            call()
        raise
    return _json(view, manager.writer, status.HTTP_201_CREATED, after)


async def _place(
    manager: Manager, sc: Scoped, http: Request, request: InstanceRequest, tenant: str | None
) -> Response | None:
    """The answer of the node the cluster part forwards ``request`` to; ``None``: run here.

    A node chosen by placement (not named) that refuses for lack of room is left out and
    placement asked again: two placements within one heartbeat, from this node or another,
    may pick the same node before its record shows the first one's resources."""
    placer = manager.placer
    if placer is None:
        raise WrongState("node: this daemon is not a node of a cluster (no [cluster] table)")
    template = manager.templates.get(request.template)
    body = request.model_dump(mode="json", exclude_defaults=True)
    who = sc.who(http)
    # the tenant the instance will be the tenant's of: the caller's, or the admin's ?tenant=
    owner = who.tenant if who.kind == "tenant" else tenant
    refused: frozenset[str] = frozenset()
    while True:
        node = placer.target(
            request,
            template,
            admin=who.is_admin,
            forwarded=http.headers.get(FORWARDED),
            exclude=refused,
        )
        if node is None:
            return None
        code, content, full = await placer.forward(node, body, owner)
        if not full or request.node is not None:
            break
        refused |= {node}
    response = Response(content=content, status_code=code, media_type="application/json")
    response.headers[NODE_HEADER] = node
    return response


FORWARDED = "x-fluidedge-forwarded"
NODE_HEADER = "x-fluidedge-node"


def _relayed(
    manager: Manager, sc: Scoped, http: Request, name: str, method: str
) -> Response | None:
    """With ``[cluster]``: the answer of the node that runs instance ``name`` when it is not
    here (the admin's reads and deletes reach it through any node, a tenant's those of its
    own instances); ``None``: answer here."""
    placer = manager.placer
    if placer is None or name in manager.instances or http.headers.get(FORWARDED) is not None:
        return None
    who = sc.who(http)
    if not who.is_admin and (who.kind != "tenant" or placer.instance_tenant(name) != who.tenant):
        return None  # another tenant's, or the admin's: missing here, as for a tenant
    node = placer.owner(name)
    if node is None:
        return None
    code, content = placer.relay(node, method, f"/v1/instances/{name}")
    media = "application/json" if content else None
    response = Response(content=content or None, status_code=code, media_type=media)
    response.headers[NODE_HEADER] = node
    return response


def _json_body(scope: Scope) -> bool:
    """Whether the request says its body is ``application/json`` (parameters aside)."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"application/json")
    return False


def hot_routes(manager: Manager, scoped: Scoped) -> list[HotRoute]:
    """Create, pause and resume as hot routes (see the module docstring)."""

    async def create(scope: Scope, _params: dict[str, str], body: bytes) -> Response | None:
        arrived = time.perf_counter()
        if scope.get("query_string") or not _json_body(scope):
            return None  # ?tenant= or another media type: the FastAPI route decides
        try:
            # JSON mode straight from the bytes (4x cheaper than json.loads + validate; any
            # refusal is re-judged by the FastAPI route, whose 400 is the answer)
            request = InstanceRequest.model_validate_json(body)
        except (ValueError, ValidationError):
            return None
        return await _create(manager, scoped, Request(scope), request, None, arrived)

    def freezer(op: Callable[..., InstanceView]) -> Any:
        async def handler(scope: Scope, params: dict[str, str], _body: bytes) -> Response | None:
            if scope.get("query_string"):
                return None
            name = params["name"]
            scoped.require_change("instance", scoped.who(Request(scope)), name)
            return await _freezer_op(manager, op, name)

        return handler

    return [
        HotRoute("POST", "/v1/instances", create),
        HotRoute("POST", "/v1/instances/{name}/pause", freezer(manager.pause)),
        HotRoute("POST", "/v1/instances/{name}/resume", freezer(manager.resume)),
    ]


_VIEWS = TypeAdapter(list[InstanceView])


def _shown(spec: TemplateSpec, unredacted: bool) -> TemplateSpec:
    """``spec`` as this reader may see it: secrets redacted unless ``unredacted``."""
    if unredacted or not (spec.env or spec.files):
        return spec
    return spec.model_copy(
        update={"env": redact_values(spec.env), "files": redact_values(spec.files)}
    )


TenantParam = Query(
    default=None,
    pattern=r"^[a-z][a-z0-9]{0,7}$",
    description="admin only: the tenant that will own the new resource",
)


def build_router(manager: Manager, scoped: Scoped | None = None) -> APIRouter:
    router = APIRouter(prefix="/v1")
    sc = scoped or Scoped(manager, None)

    # templates
    @router.get("/templates", tags=["templates"])
    def list_templates(request: Request) -> list[TemplateSpec]:
        who = sc.who(request)
        names = sc.templates_visible(who, sorted(manager.templates))
        return [_shown(manager.templates[n], sc.unredacted(who, request, n)) for n in names]

    @router.post(
        "/templates",
        tags=["templates"],
        status_code=status.HTTP_201_CREATED,
        responses=error_responses(403, 404, 409, 422),
    )
    def create_template(
        spec: TemplateSpec, request: Request, tenant: str | None = TenantParam
    ) -> TemplateSpec:
        made = sc.create_template(sc.who(request), spec, tenant)
        if manager.placer is not None:  # the site's (a tenant's with it): every node gets it
            manager.placer.template_created(made, sc.owner("template", made.name))
        return made

    @router.get("/templates/{name}", tags=["templates"], responses=error_responses(404))
    def get_template(name: str, request: Request) -> TemplateSpec:
        who = sc.who(request)
        sc.require_template(who, name)
        return _shown(manager.get_template(name), sc.unredacted(who, request, name))

    @router.delete(
        "/templates/{name}",
        tags=["templates"],
        status_code=status.HTTP_204_NO_CONTENT,
        responses=error_responses(403, 404, 409),
    )
    def delete_template(name: str, request: Request) -> Response:
        who = sc.who(request)
        if manager.placer is not None:  # here and from the site, at once
            manager.placer.delete_shared(
                "templates", name, lambda: sc.delete("template", who, name, manager.delete_template)
            )
        else:
            sc.delete("template", who, name, manager.delete_template)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    # instances
    @router.get(
        "/instances",
        tags=["instances"],
        response_model=list[InstanceView],
        responses=error_responses(400),
    )
    def list_instances(
        request: Request,
        limit: int | None = Query(
            default=None,
            ge=1,
            le=MAX_PAGE,
            description='at most this many instances, by name; a `Link: <...>; rel="next"` '
            "header names the next page while one follows (without it: all of them)",
        ),
        after: str | None = Query(
            default=None,
            pattern=NAME_PATTERN,
            description="only instances whose name sorts after this one (the next page's "
            "marker, as the `Link` header gives it)",
        ),
    ) -> Response:
        # Serialised once (as _json does) rather than re-validated against the response
        # model first: the list is O(N), each instance's view is what it must cost.
        views, marker = manager.instance_page(
            after=after, limit=limit, visible=sc.instance_filter(sc.who(request))
        )
        headers = link_headers(request.url.path, request.query_params, marker, limit)
        return Response(
            content=_VIEWS.dump_json(views), media_type="application/json", headers=headers
        )

    @router.post(
        "/instances",
        tags=["instances"],
        status_code=status.HTTP_201_CREATED,
        response_model=InstanceView,
        responses=error_responses(403, 404, 409, 422, 504),
    )
    async def create_instance(
        request: InstanceRequest,
        http: Request,
        arrived: float = Depends(_arrival),
        tenant: str | None = TenantParam,
    ) -> Response:
        return await _create(manager, sc, http, request, tenant, arrived)

    @router.get(
        "/instances/{name}",
        tags=["instances"],
        response_model=InstanceView,
        responses=error_responses(404),
    )
    def get_instance(name: str, request: Request) -> Any:
        relayed = _relayed(manager, sc, request, name, "GET")
        if relayed is not None:
            return relayed
        sc.require("instance", sc.who(request), name)
        return manager.get_instance(name).view()

    @router.delete(
        "/instances/{name}",
        tags=["instances"],
        status_code=status.HTTP_204_NO_CONTENT,
        responses=error_responses(404),
    )
    def delete_instance(name: str, request: Request) -> Response:
        relayed = _relayed(manager, sc, request, name, "DELETE")
        if relayed is not None:
            return relayed
        sc.delete("instance", sc.who(request), name, manager.delete_instance)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/instances/{name}/pause",
        tags=["instances"],
        response_model=InstanceView,
        responses=error_responses(404, 409),
    )
    async def pause_instance(name: str, request: Request) -> Response:
        sc.require_change("instance", sc.who(request), name)
        return await _freezer_op(manager, manager.pause, name)

    @router.post(
        "/instances/{name}/resume",
        tags=["instances"],
        response_model=InstanceView,
        responses=error_responses(404, 409),
    )
    async def resume_instance(name: str, request: Request) -> Response:
        sc.require_change("instance", sc.who(request), name)
        return await _freezer_op(manager, manager.resume, name)

    @router.get(
        "/instances/{name}/logs",
        tags=["instances"],
        response_class=PlainTextResponse,
        responses=error_responses(404),
    )
    def instance_logs(name: str, request: Request) -> str:
        sc.require("instance", sc.who(request), name)
        return manager.logs(name)

    @router.get("/stats", tags=["instances"])
    def stats() -> dict[str, Any]:
        """cgroup mode (v1, hybrid or v2) and parent, runtime, launcher kind, counts."""
        return manager.stats()

    # pools
    @router.get("/pools", tags=["pools"])
    def pools(request: Request) -> list[PoolStatus]:
        who = sc.who(request)
        return [p for p in manager.pool_status() if sc.templates_visible(who, [p.template])]

    # orphans: ours, unknown to the store, kept until an operator removes them
    @router.get("/orphans", tags=["pools"])
    def list_orphans() -> list[OrphanView]:
        return manager.list_orphans()

    @router.delete("/orphans", tags=["pools"])
    def purge_orphans() -> dict[str, list[str]]:
        return {"purged": manager.purge_orphans()}

    @router.delete("/orphans/{orphan_id}", tags=["pools"], responses=error_responses(404))
    def purge_orphan(orphan_id: str) -> dict[str, list[str]]:
        return {"purged": manager.purge_orphans([orphan_id])}

    # networks
    @router.get("/networks", tags=["networks"])
    def list_networks(request: Request) -> list[NetworkSpec]:
        names = sc.visible(sc.who(request), "network", sorted(manager.networks))
        return [manager.networks[name] for name in names]

    @router.post(
        "/networks",
        tags=["networks"],
        status_code=status.HTTP_201_CREATED,
        responses=error_responses(403, 404, 409),
    )
    def create_network(
        spec: NetworkSpec, request: Request, tenant: str | None = TenantParam
    ) -> NetworkSpec:
        made = sc.create_network(sc.who(request), spec, tenant)
        if manager.placer is not None:  # an ovn network: the site's (a tenant's with it)
            manager.placer.network_created(made, sc.owner("network", made.name))
        return made

    @router.get("/networks/{name}", tags=["networks"], responses=error_responses(404))
    def get_network(name: str, request: Request) -> NetworkSpec:
        sc.require("network", sc.who(request), name)
        return manager.get_network(name)

    @router.delete(
        "/networks/{name}",
        tags=["networks"],
        status_code=status.HTTP_204_NO_CONTENT,
        responses=error_responses(403, 404, 409),
    )
    def delete_network(name: str, request: Request) -> Response:
        who = sc.who(request)
        if manager.placer is not None:  # here and from the site, at once
            manager.placer.delete_shared(
                "networks", name, lambda: sc.delete("network", who, name, manager.delete_network)
            )
        else:
            sc.delete("network", who, name, manager.delete_network)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    router.include_router(build_image_router(manager))
    router.include_router(build_routers_router(manager, sc))
    return router
