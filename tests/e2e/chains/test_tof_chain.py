"""The TOF hands a service's offloaded traffic to a chain (§4.3.2.2), in one real daemon.

The lab (tof mode) sends real GTP-U: a UE's uplink to the service's serviceIP is offloaded by
the daemon's TOF (both backends), whose apps side is rewired here onto the daemon's instance
network (``ovs``: OpenFlow chains; ``linuxbridge``: the tc/eBPF chains): the apps gateway
moves from the lab's apps bridge to a veth whose other end
is a port of the network (the TOF's port). The app is a host on the same network. A flow
classifier names the TOF service (``tof_service``), so the chain's classifier is the TOF's
port plus the service's applicationIP: the UE's datagrams go TOF -> function -> app, the
app's echoes app -> function -> TOF, which encapsulates them toward the eNB, so the UE's
socket receives them. The function (a transparent bridge in a namespace) sees each of them
once in each direction; traffic the classifier does not take (another port) goes straight to
the app; with the function gone the closed chain drops the service's traffic. The same
with runc instances of the built-in firewall and counter templates as the chain's functions,
and with the service an ME app's traffic rule made (the chain names the rule's ``mec-``
service).
"""

from __future__ import annotations

import os
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from fluidedge.chains.linuxbridge import PREF
from fluidedge.core.client import Client
from fluidedge.lab.lab import Lab
from fluidedge.linux import netns as netns_mod
from fluidedge.linux import tc
from fluidedge.linux.proc import run
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.ovs.vsctl import Vsctl
from fluidedge.tof.launch import s1_pairs, wait_s1_ready
from tests.e2e.chains.cleanup import purge_daemon_state
from tests.e2e.chains.test_runc_functions import nsexec, ports, rx
from tests.e2e.tof.conftest import SERVICE_IP, lab_config, tof_section
from tests.fixtures.daemon import DaemonHandle
from tests.fixtures.wait import wait_for, wait_until
from tests.functional.chains.chain_lab import Function, echo, plug_function, plug_function_linux

pytestmark = pytest.mark.root

TAG = f"ct{os.getpid() % 100000}"
NET = TAG
NS = f"fe{TAG}-sw"
BRIDGE = f"fe{TAG}"[:15]
APP_IP = "198.19.0.20"
CHAINED, DIRECT = 7000, 7001
ROUNDS = 20


@dataclass
class Echo:
    """A UDP echo server in a namespace, counting what it answered per (peer, port)."""

    sockets: list[socket.socket]
    answered: Counter[tuple[int, int]] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def serve(self, s: socket.socket, port: int) -> None:
        s.settimeout(0.1)
        while not self.stop.is_set():
            try:
                data, peer = s.recvfrom(2048)
            except OSError:
                continue
            # counted before it is sent: a client that got its echo back finds it counted
            self.answered[(peer[1], port)] += 1
            try:
                s.sendto(data, peer)
            except OSError:
                self.answered[(peer[1], port)] -= 1


@dataclass
class Env:
    lab: Lab
    daemon: DaemonHandle
    vsctl: Vsctl | None  # the network's switch (ovs only)
    tof_port: str
    app_port: str
    fn: Function
    server: Echo

    def steering(self, match: str) -> bool:
        """Is the classifier of the TOF service's traffic installed on the TOF's port (ovs:
        ``match`` among its table-0 flows; linuxbridge: the chains' program on the port)?"""
        if self.vsctl is None:
            return f"pref {PREF} bpf" in tc.show_filters(NS, self.tof_port, "ingress")
        ofport = self.vsctl.ofport(self.tof_port)
        flows = Ofctl(self.vsctl.daemons, BRIDGE).dump("table=0")
        return any(all(x in line for x in (f"in_port={ofport},", match, "udp")) for line in flows)

    def remove_function(self) -> None:
        """The function's instance goes (ovs: its port leaves and the poll re-applies;
        linuxbridge: its legs vanish, which the program finds at the next packet)."""
        if self.vsctl is None:
            run(["ip", "-n", NS, "link", "del", self.fn.ingress])
            return
        self.vsctl.del_port(self.fn.ingress)
        ofctl = Ofctl(self.vsctl.daemons, BRIDGE)
        wait_for(
            lambda: any(
                "table=42" in line and "actions=drop" in line for line in ofctl.dump("table=42")
            ),
            30,
            "the chain without its member",
        )


def _plug_host(vsctl: Vsctl | None, peer_ns: str, dev: str, peer: str) -> None:
    """A veth from the switch's namespace into ``peer_ns`` (as ``peer``), on the bridge."""
    run(["ip", "-n", NS, "link", "add", dev, "type", "veth", "peer", "name", peer,
         "netns", peer_ns])  # fmt: skip
    for where, ifname in ((NS, dev), (peer_ns, peer)):
        run(["ip", "netns", "exec", where, "ethtool", "-K", ifname, "tx", "off"])
        run(["ip", "-n", where, "link", "set", ifname, "up"])
    if vsctl is None:
        run(["ip", "-n", NS, "link", "set", dev, "master", BRIDGE])
    else:
        vsctl.add_port(BRIDGE, dev, {"fluidedge-network": NET})


@pytest.fixture(
    params=[
        ("userspace", "ovs"),
        ("fastpath", "ovs"),
        ("userspace", "linuxbridge"),
        ("fastpath", "linuxbridge"),
    ],
    ids="-".join,
)
def env(
    daemon_factory: Callable[..., DaemonHandle], request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Env]:
    backend, driver = request.param
    lab = Lab.up(lab_config(), prefix=f"{TAG}{backend[0]}{driver[0]}", mode="tof")
    app_ns = f"{TAG}app"
    fn = Function("fw", f"{TAG}fn", f"{TAG}fi", f"{TAG}fo")
    handle: DaemonHandle | None = None
    server = Echo([])
    state = tmp_path / "state"
    try:
        netns_mod.create(NS)
        handle = daemon_factory(
            state_dir=state,
            parts={
                "instances": {
                    "pool_scale": 0,
                    "memory_mb": 1024,
                    "builtin_templates": False,
                    "networks": {
                        NET: {
                            "bridge": BRIDGE,
                            "netns": NS,
                            "subnet": "198.18.45.0/24",
                            "driver": driver,
                        }
                    },
                },
                "chains": {"poll_interval": 0.2},
                "tof": tof_section(lab, backend),
                "mec": {},
            },
        )
        vsctl: Vsctl | None = None
        if driver == "ovs":
            ovs_bridges.configure(Path(handle.config["state_dir"]) / "instances")
            vsctl = Vsctl(ovs_bridges.switch(NS))
        # The TOF's apps side: the gateway leaves the lab's apps bridge for a veth on the
        # network (the kernel of the TOF's namespace routes offloaded packets out of it).
        host = lab.host_ns
        gateway = f"{lab.apps_gateway}/24"
        run(["ip", "-n", host, "addr", "del", gateway, "dev", lab.apps_bridge])
        _plug_host(vsctl, host, f"{TAG}t", "fetof")
        run(["ip", "-n", host, "addr", "add", gateway, "dev", "fetof"])
        # The app: a host on the network, routing the UE pool to the gateway.
        netns_mod.create(app_ns)
        _plug_host(vsctl, app_ns, f"{TAG}a", "eth0")
        run(["ip", "-n", app_ns, "addr", "add", f"{APP_IP}/24", "dev", "eth0"])
        run(["ip", "-n", app_ns, "route", "add", "default", "via", str(lab.apps_gateway)])
        for port in (CHAINED, DIRECT):

            def bind(p: int = port) -> socket.socket:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("0.0.0.0", p))
                return s

            s = netns_mod.call_in_netns(app_ns, bind)
            server.sockets.append(s)
            threading.Thread(target=server.serve, args=(s, port), daemon=True).start()
        if vsctl is None:
            plug_function_linux(fn, NS, BRIDGE)
        else:
            plug_function(fn, NS, vsctl, Ofctl(vsctl.daemons, BRIDGE), NET)
        client = handle.client()
        try:
            assert wait_s1_ready(client, s1_pairs(lab)), "no echo crossed the TOF"
        finally:
            client.close()
        yield Env(lab, handle, vsctl, f"{TAG}t", f"{TAG}a", fn, server)
    finally:
        server.stop.set()
        for s in [*server.sockets, *fn.sockets.values()]:
            s.close()
        if handle is not None:
            handle.stop()
        purge_daemon_state(state, NS)
        for ns in (fn.netns, app_ns, NS):
            netns_mod.delete(ns)
        lab.down()


def _ue_socket(lab: Lab) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        return s

    return netns_mod.call_in_netns(lab.ns("ue1"), make)


def _accumulate(fn: Function, into: dict[str, Counter[tuple[int, int]]]) -> None:
    for side, counts in fn.seen().items():
        into.setdefault(side, Counter()).update(counts)


def test_offloaded_traffic_crosses_the_chain_both_ways(env: Env) -> None:
    client = env.daemon.client()
    try:
        _scenario(env, client)
    finally:
        client.close()


def test_a_mec_traffic_rules_offload_crosses_the_chain_that_names_its_service(env: Env) -> None:
    """The ME platform's traffic rule makes the TOF service (``mec-...``, docs/me-platform.md);
    a chain whose classifier names that service takes the rule's offloaded traffic."""
    client = env.daemon.client()
    try:
        rule = {"trafficRuleId": "video", "filterType": "FLOW", "priority": 1,
                "trafficFilter": [{"dstAddress": [SERVICE_IP]}],
                "action": "FORWARD_DECAPSULATED", "state": "ACTIVE"}  # fmt: skip
        app = client.post("/v1/apps", {"name": "chained", "dataAddress": APP_IP,
                                       "trafficRules": [rule]})  # fmt: skip
        url = f"{env.daemon.url}/mec_app_support/v1/applications/{app['appInstanceId']}"
        ready = httpx.post(f"{url}/confirm_ready", json={"indication": "READY"}, timeout=30,
                           headers={"Authorization": f"Bearer {app['token']}"})  # fmt: skip
        assert ready.status_code == 204, ready.text
        [service] = [s for s in client.get("/service") if s["name"].startswith("mec-")]
        assert (service["serviceIP"], service["applicationIP"]) == (SERVICE_IP, APP_IP)
        _scenario(env, client, service["name"])
    finally:
        client.close()


def _scenario(env: Env, client: Client, service: str | None = None) -> None:
    """The chain of one function for the TOF service ``service`` (None: made here, "video")."""
    if service is None:
        client.post("/service", {"name": "video", "serviceIP": SERVICE_IP, "applicationIP": APP_IP})
        service = "video"
    client.post(
        "/v1/chains/port-pairs", {"id": "fw", "ingress": env.fn.ingress, "egress": env.fn.egress}
    )
    client.post("/v1/chains/port-pair-groups", {"id": "g", "port_pairs": ["fw"]})
    client.post(
        "/v1/chains/flow-classifiers",
        {"id": "video", "logical_source_port": env.tof_port,
         "logical_destination_port": env.app_port, "protocol": "udp",
         "destination_port_range_min": CHAINED, "tof_service": service},
    )  # fmt: skip
    client.post(
        "/v1/chains", {"id": "video", "port_pair_groups": ["g"], "flow_classifiers": ["video"]}
    )
    wait_for(
        lambda: env.steering(f"nw_dst={APP_IP},"), 30, "the classifier of the TOF service's traffic"
    )
    seen: dict[str, Counter[tuple[int, int]]] = {}
    _accumulate(env.fn, seen)
    seen.clear()
    ue = _ue_socket(env.lab)
    try:
        sport = ue.getsockname()[1]
        for _ in range(ROUNDS):
            assert echo(ue, (SERVICE_IP, CHAINED)), "an echo through the chain did not return"
        assert echo(ue, (SERVICE_IP, DIRECT)), "the unchained port's echo did not return"

        # Every datagram the app answered crossed the function once each way (forward on its
        # ingress leg, the echo on its egress leg); the unchained port never did.
        answered = env.server.answered

        def counted() -> bool:
            _accumulate(env.fn, seen)
            return (
                seen["in"][(sport, CHAINED)] == answered[(sport, CHAINED)]
                and seen["out"][(CHAINED, sport)] == answered[(sport, CHAINED)]
            )

        assert wait_until(counted, 10), (seen, answered)
        assert answered[(sport, CHAINED)] >= ROUNDS
        assert answered[(sport, DIRECT)] >= 1
        assert not any(DIRECT in key for side in seen.values() for key in side)

        # The function goes: the closed chain drops the service's traffic, the rest flows.
        env.remove_function()
        assert not echo(ue, (SERVICE_IP, CHAINED), timeout=2.0)
        assert echo(ue, (SERVICE_IP, DIRECT))
    finally:
        ue.close()


def test_offloaded_traffic_crosses_runc_firewall_and_counter(env: Env) -> None:
    client = env.daemon.client()
    try:
        _runc_scenario(env, client)
    finally:
        client.close()


def _runc_scenario(env: Env, client: Client) -> None:
    """UE -> TOF -> firewall -> counter -> app and back, the functions runc instances of the
    built-in templates: the firewall drops exactly the service's datagrams to DIRECT, the
    counter sees each datagram the app answered once each way."""
    client.post("/service", {"name": "video", "serviceIP": SERVICE_IP, "applicationIP": APP_IP})
    fw_rules = [f"udp dport {DIRECT} counter drop"]
    for kind, extra in (("firewall", {"rules": fw_rules}), ("counter", {})):
        body = {"kind": kind, "name": f"{TAG}-{kind}", "network": NET, **extra}
        client.post("/v1/chains/function-templates", body)
    made = {}
    for name, kind in (("fw", "firewall"), ("ctr", "counter")):
        made[name] = client.post("/v1/instances", {"name": name, "template": f"{TAG}-{kind}"})
        legs = ports(made[name])
        pair = {"id": name, "ingress": legs["eth0"], "egress": legs["eth1"]}
        client.post("/v1/chains/port-pairs", pair)
        client.post("/v1/chains/port-pair-groups", {"id": name, "port_pairs": [name]})
    client.post(
        "/v1/chains/flow-classifiers",
        {"id": "video", "logical_source_port": env.tof_port,
         "logical_destination_port": env.app_port, "protocol": "udp", "tof_service": "video"},
    )  # fmt: skip
    chain = {"id": "video", "port_pair_groups": ["fw", "ctr"], "flow_classifiers": ["video"]}
    client.post("/v1/chains", chain)
    wait_for(
        lambda: env.steering(f"nw_dst={APP_IP} "), 30, "the classifier of the TOF service's traffic"
    )
    ue = _ue_socket(env.lab)
    try:
        sport = ue.getsockname()[1]
        for _ in range(ROUNDS):
            assert echo(ue, (SERVICE_IP, CHAINED)), "an echo through the chain did not return"
        assert not echo(ue, (SERVICE_IP, DIRECT), timeout=2.0)  # the firewall's rule
        answered = env.server.answered
        assert answered[(sport, CHAINED)] >= ROUNDS
        assert answered[(sport, DIRECT)] == 0
        ctr = made["ctr"]["pid"]

        def counted() -> bool:
            want = answered[(sport, CHAINED)]
            return rx(ctr, "eth0") == want and rx(ctr, "eth1") == want

        assert wait_until(counted, 10), (rx(ctr, "eth0"), rx(ctr, "eth1"), answered)
        ruleset = nsexec(made["fw"]["pid"], "nft", "list", "ruleset").stdout
        assert f"udp dport {DIRECT} counter packets 0 " not in ruleset
    finally:
        ue.close()
    for name in ("fw", "ctr"):
        client.delete(f"/v1/instances/{name}")
