"""The chain service through its REST routes, with the real SQLite store and a real switch:
objects declared over HTTP steer real traffic, bad requests change nothing, a restart (a new
service over the same store) restores and reconciles, and a deleted function instance leaves
its group at the next reconcile."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from fluidedge.chains.api import build_router
from fluidedge.chains.compiler import CHAIN_COOKIE, COOKIE_MASK, T_CLASSIFY
from fluidedge.chains.ovs import OvsChains
from fluidedge.chains.persist import Tables
from fluidedge.chains.service import ChainService
from fluidedge.core.store import Store
from fluidedge.daemon.edge import error_detail, error_status
from fluidedge.errors import FluidedgeError
from fluidedge.ovs.ofctl import Ofctl

from .chain_lab import ChainLab, echo

pytestmark = pytest.mark.root
PORT = 7100


def _app(service: ChainService) -> FastAPI:
    app = FastAPI()
    app.include_router(build_router(service))

    @app.exception_handler(RequestValidationError)
    async def _bad(_r: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc.errors()[0]["loc"])})

    @app.exception_handler(FluidedgeError)
    async def _domain(_r: Request, exc: FluidedgeError) -> JSONResponse:
        return JSONResponse(status_code=error_status(exc), content={"detail": error_detail(exc)})

    return app


class _Env:
    def __init__(self, lab: ChainLab, tmp: Path) -> None:
        self.lab = lab
        self.path = tmp / "store.db"
        self.stores: list[Store] = []

    def client(self) -> tuple[ChainService, TestClient]:
        store = Store(self.path)
        self.stores.append(store)
        plane = OvsChains(self.lab.daemons, self.lab.bridge)
        service = ChainService(Tables(store), lambda: [plane])
        service.load()
        service.apply_all()
        return service, TestClient(_app(service))


@pytest.fixture
def env(chain_lab: ChainLab, tmp_path: Path) -> Iterator[_Env]:
    e = _Env(chain_lab, tmp_path)
    yield e
    for store in e.stores:
        store.close()


def _ok(response: Any, code: int = 200) -> Any:
    assert response.status_code == code, response.text
    return response.json() if response.content else None


def test_declare_over_rest_restart_and_a_deleted_member(env: _Env) -> None:
    lab = env.lab
    a = lab.host("a", "net", "02:00:00:00:0a:01", "10.0.0.1/24")
    b = lab.host("b", "net", "02:00:00:00:0a:02", "10.0.0.2/24")
    f1, f2 = lab.function("f1"), lab.function("f2")
    _service, http = env.client()
    for fn in (f1, f2):
        pair = {"id": fn.name, "ingress": fn.ingress, "egress": fn.egress}
        _ok(http.post("/v1/chains/port-pairs", json=pair), 201)
    _ok(http.post("/v1/chains/port-pair-groups", json={"id": "g", "port_pairs": ["f1", "f2"]}), 201)
    fc = {"id": "c", "logical_source_port": a.device, "logical_destination_port": b.device,
          "protocol": "udp", "destination_port_range_min": PORT}  # fmt: skip
    _ok(http.post("/v1/chains/flow-classifiers", json=fc), 201)
    chain = _ok(
        http.post(
            "/v1/chains", json={"id": "ch", "port_pair_groups": ["g"], "flow_classifiers": ["c"]}
        ),
        201,
    )
    assert chain["chain_id"] == 1  # allocated
    assert chain["symmetric"] is True
    assert chain["failure_policy"] == "closed"

    # Bad requests: a 400/404/409/422 with a reason, and nothing changes.
    ofctl = Ofctl(lab.daemons, lab.bridge)
    table = sorted(ofctl.dump())
    for method, path, body, code, reason in [
        ("post", "/v1/chains/flow-classifiers", {**fc, "id": "d", "source_ip_prefix": "fd0::/8"},
         422, "IPv4"),
        ("post", "/v1/chains/flow-classifiers", {**fc, "id": "d", "source_ip_prefix": "fd0:/8"},
         400, "source_ip_prefix"),
        ("post", "/v1/chains/flow-classifiers", {**fc, "id": "d", "typo": 1}, 400, "typo"),
        ("post", "/v1/chains/port-pairs", {"id": "x", "ingress": "a b"}, 400, "ingress"),
        ("post", "/v1/chains", {"id": "c2", "port_pair_groups": ["g"]}, 409, "port pair group 'g'"),
        ("post", "/v1/chains", {"id": "c3", "port_pair_groups": ["nope"]}, 404, "nope"),
        ("post", "/v1/chains/port-pairs", {"id": "f1", "ingress": "zz"}, 409, "exists"),
        ("delete", "/v1/chains/port-pair-groups/g", None, 409, "in use"),
        ("delete", "/v1/chains/port-pairs/f2", None, 409, "in use"),
        ("get", "/v1/chains/nope", None, 404, "nope"),
    ]:  # fmt: skip
        kwargs = {"json": body} if body is not None else {}
        response = getattr(http, method)(path, **kwargs)
        assert response.status_code == code, (path, response.text)
        assert reason in response.text
    assert sorted(ofctl.dump()) == table
    assert [c["id"] for c in _ok(http.get("/v1/chains"))] == ["ch"]

    lab.udp_echo(b, PORT)
    clients = [lab.udp_client(a) for _ in range(8)]
    try:
        for c in clients:
            assert echo(c, ("10.0.0.2", PORT))
        seen = {fn.name: fn.seen()["in"] for fn in (f1, f2)}
        owner = {}
        for c in clients:
            sport = c.getsockname()[1]
            (name,) = [n for n, s in seen.items() if s[(sport, PORT)]]
            owner[sport] = name

        # Restart: a new service over the same store restores and reconciles the table.
        restarted, http2 = env.client()
        assert [c["id"] for c in _ok(http2.get("/v1/chains"))] == ["ch"]
        assert _ok(http2.get("/v1/chains/port-pair-groups/g"))["port_pairs"] == ["f1", "f2"]
        assert restarted.reconcile() == []  # nothing changed since
        for c in clients:
            assert echo(c, ("10.0.0.2", PORT))
        seen = {fn.name: fn.seen()["in"] for fn in (f1, f2)}
        for c in clients:
            sport = c.getsockname()[1]
            assert seen[owner[sport]][(sport, PORT)] >= 1  # same member after the restart

        # Someone replaces the bridge's whole table (the security groups' first install does):
        # the reconcile notices and reinstalls the same flows; the pins are gone, but the
        # symmetric hash puts every flow back on its member.
        def chain_table() -> list[str]:
            return sorted(
                re.sub(r"cookie=0x[0-9a-f]+, ", "", line)
                for line in ofctl.dump()
                if "cookie=0xc4a1" in line
            )

        before = chain_table()
        ofctl.replace(["table=0,priority=0,actions=NORMAL"])
        assert restarted.reconcile() == [lab.bridge]
        assert chain_table() == before
        for c in clients:
            assert echo(c, ("10.0.0.2", PORT))
        seen = {fn.name: fn.seen()["in"] for fn in (f1, f2)}
        for c in clients:
            sport = c.getsockname()[1]
            assert seen[owner[sport]][(sport, PORT)] >= 1

        # Someone replaces the chain flows' actions in place (``mod-flows``): as many flows as
        # installed, the functions bypassed. The reconcile sees it from the flows' digest,
        # learnt at its first look after the reinstall, and puts them back.
        assert restarted.reconcile() == []  # learns the reinstalled flows
        ofctl.bundle(
            [f"modify cookie={CHAIN_COOKIE:#x}/{COOKIE_MASK:#x},table={T_CLASSIFY},actions=NORMAL"]
        )
        assert len(chain_table()) == len(before)
        assert chain_table() != before
        assert restarted.reconcile() == [lab.bridge]
        assert chain_table() == before
        assert restarted.reconcile() == []
        for c in clients:
            assert echo(c, ("10.0.0.2", PORT))
        seen = {fn.name: fn.seen()["in"] for fn in (f1, f2)}
        for c in clients:
            sport = c.getsockname()[1]
            assert seen[owner[sport]][(sport, PORT)] >= 1

        # f1's instance is deleted: its ports leave the switch, the reconcile sees it.
        lab.unplug(f1)
        assert restarted.reconcile() == [lab.bridge]
        for c in clients:
            assert echo(c, ("10.0.0.2", PORT))
        seen2 = f2.seen()["in"]
        assert all(seen2[(c.getsockname()[1], PORT)] >= 1 for c in clients)

        # f2's instance is made again under its id (its restart policy): the same port names,
        # new port numbers. The reconcile sees the numbers (the names alone did not change:
        # its steering kept naming the old ports, and the chain sent nothing through f2).
        lab.made_again(f2, number=40)
        assert restarted.reconcile() == [lab.bridge]
        assert {restarted.planes()[0].ofports()[d] for d in (f2.ingress, f2.egress)} == {40, 41}
        for c in clients:
            assert echo(c, ("10.0.0.2", PORT))
        seen3 = f2.seen()["in"]
        assert all(seen3[(c.getsockname()[1], PORT)] >= 1 for c in clients)

        # Deleting the chain removes every flow it had (and its pins).
        _ok(http2.delete("/v1/chains/ch"), 204)
        left = [line for line in ofctl.dump() if "cookie=0xc4a1" in line or "table=41" in line]
        assert all("priority=250" in line for line in left), left  # only the isolation
    finally:
        for c in clients:
            c.close()


def test_a_classifier_naming_a_tof_service_follows_the_service(
    chain_lab: ChainLab, tmp_path: Path
) -> None:
    """``tof_service``: no service, no steering; the service appears (or moves to another
    app) and the next reconcile steers its address; a body naming both a service and a
    destination prefix is a 422 (two fields that contradict each other), a bad service name a
    400 (the schema's pattern); neither stores anything."""
    a = chain_lab.host("a", "net", "02:00:00:00:0b:01", "10.0.0.1/24")
    b = chain_lab.host("b", "net", "02:00:00:00:0b:02", "10.0.0.2/24")
    fn = chain_lab.function("fw")
    store = Store(tmp_path / "store.db")
    try:
        plane = OvsChains(chain_lab.daemons, chain_lab.bridge)
        services: dict[str, Any] = {}
        service = ChainService(Tables(store), lambda: [plane], lambda: dict(services))
        service.load()
        service.apply_all()
        http = TestClient(_app(service))
        pair = {"id": "fw", "ingress": fn.ingress, "egress": fn.egress}
        _ok(http.post("/v1/chains/port-pairs", json=pair), 201)
        _ok(http.post("/v1/chains/port-pair-groups", json={"id": "g", "port_pairs": ["fw"]}), 201)
        body = {"id": "video", "logical_source_port": a.device,
                "logical_destination_port": b.device, "protocol": "udp",
                "tof_service": "video"}  # fmt: skip
        bad = http.post(
            "/v1/chains/flow-classifiers", json={**body, "destination_ip_prefix": "10.0.0.2"}
        )
        assert bad.status_code == 422, bad.text
        assert "TOF service" in bad.text
        assert (
            http.post("/v1/chains/flow-classifiers", json={**body, "tof_service": "-x"}).status_code
            == 400
        )
        assert _ok(http.get("/v1/chains/flow-classifiers")) == []
        got = _ok(http.post("/v1/chains/flow-classifiers", json=body), 201)
        assert got["tof_service"] == "video"
        assert got["destination_ip_prefix"] is None
        _ok(http.post("/v1/chains", json={"id": "v", "port_pair_groups": ["g"],
                                          "flow_classifiers": ["video"]}), 201)  # fmt: skip
        ofctl = Ofctl(chain_lab.daemons, chain_lab.bridge)

        def steering() -> list[str]:
            return [x for x in ofctl.dump("table=0") if "priority=300" in x]

        assert steering() == []  # no such service: the classifier takes nothing
        assert service.reconcile() == []
        services["video"] = ipaddress.ip_network("10.0.0.2/32")
        assert service.reconcile() == [chain_lab.bridge]
        assert any("nw_dst=10.0.0.2" in x for x in steering())
        chain_lab.udp_echo(b, PORT)
        client = chain_lab.udp_client(a)
        fn.seen()
        assert echo(client, ("10.0.0.2", PORT))
        seen = fn.seen()
        sport = client.getsockname()[1]
        assert seen["in"][(sport, PORT)] >= 1
        assert seen["out"][(PORT, sport)] >= 1
        client.close()
        services["video"] = ipaddress.ip_network("10.0.0.3/32")  # the service moved
        assert service.reconcile() == [chain_lab.bridge]
        flows = steering()
        assert any("nw_dst=10.0.0.3" in x for x in flows)
        assert not any("10.0.0.2" in x for x in flows)
    finally:
        store.close()
