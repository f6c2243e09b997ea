"""REST routes of logical routers between ``ovn`` networks (under ``/v1/routers``).

A router joins ``ovn`` networks: it takes one address on each (its instances' gateway there)
and routes between them, distributed over every node (:mod:`fluidedge.ovn.routers`). The OVN
northbound database is its store: every node's API shows and changes the same routers, and a
restarted node finds them there. The admin's only (a tenant token gets 403): a router joins
networks, which is the admin's to decide. A network a router joins cannot be deleted (409).

Checked at the boundary: the networks exist here and are ``ovn`` ones (404, 409), the
address lies inside the network's subnet with its prefix length (400).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from fluidedge.core.openapi import error_responses
from fluidedge.instances.errors import InvalidRequest, NetworkNotFound
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import Name, interface_address
from fluidedge.instances.scoping import Scoped
from fluidedge.ovn import networks as ovn_networks
from fluidedge.ovn import routers as ovn_routers
from fluidedge.ovn.errors import OvnUnavailable
from fluidedge.tenants.errors import Forbidden


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RouterInterface(_Strict):
    network: Name
    address: str = Field(max_length=64, description="the router's address, with the prefix")


class RouterSpec(_Strict):
    name: str = Field(pattern=ovn_routers.ROUTER_NAME_PATTERN)
    interfaces: list[RouterInterface] = Field(min_length=1, max_length=ovn_routers.MAX_LEGS)


def _leg(manager: Manager, body: RouterInterface) -> ovn_routers.Leg:
    spec = manager.networks.get(body.network)
    if spec is None:
        raise NetworkNotFound(f"network {body.network} does not exist")
    if spec.driver != "ovn":
        raise OvnUnavailable(f"network {body.network} is not an ovn network (driver {spec.driver})")
    try:
        address = interface_address(body.address)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    if spec.subnet is not None:
        subnet = ipaddress.ip_network(spec.subnet)
        if address.network != subnet:
            raise InvalidRequest(
                f"address {body.address} is not an address of network {body.network}'s "
                f"subnet {subnet} (with its prefix length)"
            )
    return ovn_routers.Leg(body.network, address)


def build_routers_router(manager: Manager, sc: Scoped) -> APIRouter:
    router = APIRouter()  # included in the instances' router, under its /v1
    tags: list[Any] = ["routers"]

    def admin(request: Request) -> None:
        if not sc.who(request).is_admin:
            raise Forbidden("routers are the admin's")

    @router.get("/routers", tags=tags, responses=error_responses(409))
    async def list_routers() -> list[dict[str, object]]:
        if not ovn_networks.configured():
            return []  # no OVN here: no routers (creating one is a 409)
        found = await run_in_threadpool(ovn_routers.read, ovn_networks.nbctl())
        return [r.to_json() for _, r in sorted(found.items())]

    @router.post(
        "/routers",
        tags=tags,
        status_code=status.HTTP_201_CREATED,
        responses=error_responses(403, 404, 409, 422),
    )
    async def create_router(spec: RouterSpec, request: Request) -> dict[str, object]:
        admin(request)
        made = ovn_routers.Router(spec.name, tuple(_leg(manager, i) for i in spec.interfaces))
        await run_in_threadpool(ovn_routers.create, ovn_networks.nbctl(), made)
        return made.to_json()

    @router.get("/routers/{name}", tags=tags, responses=error_responses(404, 409))
    async def get_router(name: str) -> dict[str, object]:
        # any name: one that is not a router's (malformed included) is a 404; a name only
        # ever meets a dict lookup, never a command line
        found = await run_in_threadpool(ovn_routers.get, ovn_networks.nbctl(), name)
        return found.to_json()

    @router.delete(
        "/routers/{name}",
        tags=tags,
        status_code=status.HTTP_204_NO_CONTENT,
        responses=error_responses(403, 404, 409),
    )
    async def delete_router(name: str, request: Request) -> Response:
        admin(request)
        await run_in_threadpool(ovn_routers.delete, ovn_networks.nbctl(), name)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
