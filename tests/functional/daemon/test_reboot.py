"""A host reboot, as far as one host can make one under a test: the daemon is killed, and
everything a reboot takes is taken (every process of its containers, their cgroups, mounts
and ``/run`` directories, the namespaces the operator made, the bridges and links); its state
directory and store stay. The next start must come up, lose no declared object, and serve.

A stored network in a namespace that the reboot took used to refuse that start
(``NetnsNotFound``), taking every service, instance and rule of the node down with it; so did
the security groups of an ``ovs`` network whose switch was not there. Three scenes: a Linux
bridge network in the operator's namespace and one in the host's, an ``ovs`` network with
security groups, service chains on an ``ovs`` network.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fluidedge.instances import cgroups, runc
from fluidedge.instances.images import overlay
from fluidedge.linux import netns as netns_mod
from fluidedge.linux.proc import run
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.ovs.errors import OvsError
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.ovs.vsctl import Vsctl
from tests.e2e.secgroups.scenario import get, purge, web_and_clients
from tests.e2e.secgroups.scenario import run as run_instance
from tests.fixtures.daemon import TOKEN, DaemonFactory, DaemonHandle, wait_pools
from tests.fixtures.netns import scratch_netns
from tests.fixtures.ovs_datapath import DATAPATH
from tests.fixtures.wait import wait_for, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

TAG = f"fbr{os.getpid() % 100000}"


@pytest.fixture
def namespace() -> Iterator[str]:
    """The operator's namespace (gone at the end, whatever the test did with it)."""
    with scratch_netns("op") as ns:
        yield ns


def _http(handle: DaemonHandle) -> httpx.Client:
    return httpx.Client(
        base_url=handle.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
    )


def _mounts_under(paths: list[Path]) -> list[str]:
    """Mount points at or below ``paths``, deepest first."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if any(point == str(p) or point.startswith(f"{p}/") for p in paths):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def _reboot(handle: DaemonHandle, namespaces: list[str], bridges: list[str]) -> None:
    """What a reboot takes from under a daemon, taken; what it keeps (the state directory, the
    store, runc's state files) kept."""
    handle.kill9()
    root = handle.state_dir / "instances"
    ids = [c["id"] for c in runc.Runc(root / "runc").list()]
    groups = cgroups.detect()
    for cid in ids:
        groups.kill(cid)  # the power goes: every process
    for cid in ids:
        wait_for(lambda cid=cid: not groups.procs(cid), 20, f"{cid}'s processes gone")
        groups.remove(cid)
    roots = [overlay.ROOTS / cid for cid in ids]
    for point in _mounts_under([handle.state_dir, *roots]):
        run(["umount", "-l", point])
    for path in roots:  # /run is a tmpfs
        shutil.rmtree(path, ignore_errors=True)
    for ns in namespaces:
        netns_mod.delete(ns)
    for bridge in bridges:
        run(["ip", "link", "del", bridge], check=False)
    for cid in ids:  # a host end whose peer's namespace lived on (none expected)
        for index in range(4):
            run(["ip", "link", "del", f"{cid}i{index}"], check=False)


def _web(name: str, network: str) -> dict[str, Any]:
    return {
        "name": name,
        "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/.fe/www"],
        "files": {"www/index.html": "hello from {name}\n"},
        "interfaces": [{"name": "eth0", "network": network}],
        "readiness": {"kind": "tcp", "port": 8080},
        "pool": {"size": 1},
    }


def _get(http: httpx.Client, name: str) -> dict[str, Any]:
    got: dict[str, Any] = http.get(f"/v1/instances/{name}").json()
    return got


def _state(http: httpx.Client, name: str) -> str:
    return str(_get(http, name)["state"])


def test_a_reboot_loses_no_declared_object_and_the_node_serves_again(
    daemon_factory: DaemonFactory, namespace: str
) -> None:
    host_bridge = f"{TAG}h"
    daemon = daemon_factory({"instances": {"pool_scale": 1, "switch_check_interval_s": 0.2}})
    try:
        with _http(daemon) as http:
            for body in (
                {"name": "opnet", "bridge": f"{TAG}o", "netns": namespace},
                {"name": "hostnet", "bridge": host_bridge},
            ):
                assert http.post("/v1/networks", json=body).status_code == 201
            for body in (_web("web", "opnet"), _web("hweb", "hostnet")):
                assert http.post("/v1/templates", json=body).status_code == 201
            wait_pools(lambda: http.get("/v1/pools").json())
            for name, template, address, restart in (
                ("i1", "idle", None, "no"),
                ("w1", "web", "198.18.77.2/24", "no"),
                ("h1", "hweb", "198.18.78.2/24", "no"),
                ("w3", "web", "198.18.77.4/24", "always"),
                ("h3", "hweb", "198.18.78.4/24", "always"),
            ):
                body: dict[str, Any] = {"name": name, "template": template, "restart": restart}
                if address:
                    body["interfaces"] = {"eth0": {"addresses": [address]}}
                made = http.post("/v1/instances", json=body)
                assert made.status_code == 201, made.text
            ids = {i["name"]: i["id"] for i in http.get("/v1/instances").json()}

        _reboot(daemon, [namespace], [host_bridge])
        daemon.start()  # used to exit: netns 'fbr...ns' does not exist

        with _http(daemon) as http:
            assert {n["name"] for n in http.get("/v1/networks").json()} == {"opnet", "hostnet"}
            assert {"web", "hweb", "idle"} <= {t["name"] for t in http.get("/v1/templates").json()}
            unavailable = http.get("/v1/stats").json()["networks_unavailable"]
            assert list(unavailable) == ["opnet"]
            assert "does not exist" in unavailable["opnet"]
            listed = {i["name"]: i["state"] for i in http.get("/v1/instances").json()}
            for name in ("i1", "w1", "h1"):  # declared, kept; restart "no": exited
                assert listed[name] == "exited"
            assert set(listed) == {"i1", "w1", "h1", "w3", "h3"}
            # restart "always" on the host's network: running again, same id
            h3 = wait_for(lambda: _state(http, "h3") == "running" and _get(http, "h3"), 30, "h3")
            assert (h3["id"], h3["restarts"]) == (ids["h3"], 1)
            assert _state(http, "w3") == "exited"  # its network is not back yet: pending
            assert http.get("/v1/orphans").json() == []
            # the host's network is back with its bridge: the node serves
            made = http.post(
                "/v1/instances",
                json={
                    "name": "h2",
                    "template": "hweb",
                    "interfaces": {"eth0": {"addresses": ["198.18.78.3/24"]}},
                },
            )
            assert made.status_code == 201, made.text
            assert made.json()["state"] == "running"
            # the operator makes the namespace again: the network's bridge follows
            netns_mod.create(namespace)
            wait_for(
                lambda: http.get("/v1/stats").json()["networks_unavailable"] == {},
                30,
                "opnet available again",
            )
            made = http.post(
                "/v1/instances",
                json={
                    "name": "w2",
                    "template": "web",
                    "interfaces": {"eth0": {"addresses": ["198.18.77.3/24"]}},
                },
            )
            assert made.status_code == 201, made.text
            # and w3 is made again there within its back-off
            wait_for(lambda: _state(http, "w3") == "running", 60, "w3 made again")
            assert _get(http, "w3")["id"] == ids["w3"]
            for name in ("i1", "w1", "h1", "h2", "w2", "w3", "h3"):
                gone = http.delete(f"/v1/instances/{name}")
                assert gone.status_code == 204, gone.text
            assert http.get("/v1/instances").json() == []
    finally:
        with contextlib.suppress(Exception):
            daemon.stop()
        run(["ip", "link", "del", host_bridge], check=False)


def test_a_reboot_under_an_ovs_network_with_security_groups_keeps_their_policy(
    daemon_factory: DaemonFactory,
) -> None:
    """The same on our own Open vSwitch (its daemons die with the rest; its database stays)
    with security groups: once the operator's namespace is back, the switch is started from
    its database, the network is available, and new instances get the declared policy."""
    ns, bridge, subnet = f"{TAG}sw", f"{TAG}v", "198.18.79"
    netns_mod.create(ns)
    daemon = daemon_factory(
        {
            "instances": {
                "pool_scale": 1,
                "switch_check_interval_s": 0.2,
                "ovs_datapath": DATAPATH,
                "networks": {
                    "ovsnet": {
                        "bridge": bridge,
                        "netns": ns,
                        "subnet": f"{subnet}.0/24",
                        "driver": "ovs",
                    }
                },
            },
            "secgroups": {},
        }
    )
    try:
        client = daemon.client()
        web_and_clients(client, "ovsnet", subnet, "r")
        app2 = run_instance(client, subnet, "app2", "rweb", 6, restart="always")
        client.close()
        switch = daemon.state_dir / "instances" / "ovs" / f"ns-{ns}" / "run"
        pids = [int(p.read_text()) for p in switch.glob("*.pid")]
        assert len(pids) == 2
        for pid in pids:  # the switch dies with the host
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reboot(daemon, [ns], [])
        daemon.start()

        client = daemon.client()
        unavailable = client.get("/v1/stats")["networks_unavailable"]
        assert list(unavailable) == ["ovsnet"]
        assert {g["id"] for g in client.get("/v1/security-groups")} >= {"web", "clients"}
        states = {i["name"]: i["state"] for i in client.get("/v1/instances")}
        assert states == {"app": "exited", "c1": "exited", "c2": "exited", "app2": "exited"}

        netns_mod.create(ns)
        wait_for(
            lambda: client.get("/v1/stats")["networks_unavailable"] == {},
            60,
            "ovsnet available again",
        )
        for name in ("app", "c1", "c2"):
            client.delete(f"/v1/instances/{name}")
        run_instance(client, subnet, "app", "rweb", 5)
        c1 = run_instance(client, subnet, "c1", "rcli", 11, security_groups=["clients"])
        c2 = run_instance(client, subnet, "c2", "rcli", 12)
        assert wait_until(lambda: get(c1["pid"], f"{subnet}.5") == "edge app app", 30)
        assert get(c2["pid"], f"{subnet}.5") == ""  # the default group: still nothing
        # app2 (restart = "always") is made again with its id and its groups' policy
        wait_for(lambda: client.get("/v1/instances/app2")["state"] == "running", 60, "app2")
        assert client.get("/v1/instances/app2")["id"] == app2["id"]
        assert wait_until(lambda: get(c1["pid"], f"{subnet}.6") == "edge app app2", 30)
        assert get(c2["pid"], f"{subnet}.6") == ""
        for name in ("app", "c1", "c2", "app2"):
            client.delete(f"/v1/instances/{name}")
        client.close()
    finally:
        with contextlib.suppress(Exception):
            daemon.stop()
        with contextlib.suppress(Exception):
            purge(daemon)  # deletes the ovs bridge, which stops our switch with it
        if netns_mod.exists(ns):
            netns_mod.delete(ns)


def test_a_reboot_under_a_chain_keeps_it_and_its_table_comes_back(
    daemon_factory: DaemonFactory,
) -> None:
    """Service chains on an ``ovs`` network: the start after the reboot keeps the declared
    chain; once the namespace and the function's ports are back, its flows are too."""
    ns, bridge = f"{TAG}ch", f"{TAG}c"
    names = {p: f"{TAG}{p}" for p in ("va", "vb", "f1i", "f1o")}
    netns_mod.create(ns)
    daemon = daemon_factory(
        {
            "instances": {
                "pool_scale": 0,
                "builtin_templates": False,
                "switch_check_interval_s": 0.2,
                "ovs_datapath": DATAPATH,
                "networks": {"chnet": {"bridge": bridge, "netns": ns, "driver": "ovs"}},
            },
            "chains": {"poll_interval": 0.2},
        }
    )

    def plug() -> None:
        ovs_bridges.configure(daemon.state_dir / "instances")
        vsctl = Vsctl(ovs_bridges.switch(ns))
        for dev in names.values():
            run(["ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", f"{dev}p"])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
            vsctl.add_port(bridge, dev, {"fluidedge-network": "chnet"})

    def chain_flows() -> list[str]:
        """The chain's flows, each OpenFlow port number written as its port's name: a port
        plugged again after the reboot may get another number."""
        ovs_bridges.configure(daemon.state_dir / "instances")
        with contextlib.suppress(OvsError):
            daemons = ovs_bridges.switch(ns)
            dump = Ofctl(daemons, bridge).dump()
            named = {
                str(info["ofport"]): name
                for name, info in Vsctl(daemons).interfaces().items()
                if isinstance(info["ofport"], int) and info["ofport"] > 0
            }

            def port(match: re.Match[str]) -> str:
                return match.group(1) + named.get(match.group(2), match.group(2))

            return sorted(
                re.sub(r"(in_port=|output:)(\d+)", port, re.sub(r"cookie=0x[0-9a-f]+, ", "", f))
                for f in dump
                if "0xc4a1" in f
            )
        return []

    try:
        client = daemon.client()
        client.post(
            "/v1/chains/port-pairs", {"id": "f1", "ingress": names["f1i"], "egress": names["f1o"]}
        )
        client.post("/v1/chains/port-pair-groups", {"id": "g", "port_pairs": ["f1"]})
        client.post(
            "/v1/chains/flow-classifiers",
            {"id": "c", "logical_source_port": names["va"],
             "logical_destination_port": names["vb"], "protocol": "tcp",
             "destination_port_range_min": 80},
        )  # fmt: skip
        client.post(
            "/v1/chains", {"id": "web", "port_pair_groups": ["g"], "flow_classifiers": ["c"]}
        )
        plug()

        def whole() -> list[str]:
            """The chain's tp_dst=80 flows once every port is in them (the poll applies the
            ports as they come: an earlier table is not the whole one)."""
            found = [f for f in chain_flows() if "tp_dst=80" in f]
            ports = (names["va"], names["f1o"])
            return found if all(any(f"in_port={p}," in f for f in found) for p in ports) else []

        flows = wait_for(whole, 30, "the chain's flows")
        assert any(f"in_port={names['va']}," in f for f in flows)  # numbers named
        client.close()
        switch = daemon.state_dir / "instances" / "ovs" / f"ns-{ns}" / "run"
        for pidfile in switch.glob("*.pid"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
        _reboot(daemon, [ns], [])
        daemon.start()

        client = daemon.client()
        try:
            assert [c["id"] for c in client.get("/v1/chains")] == ["web"]
            assert client.get("/v1/chains/port-pair-groups/g")["port_pairs"] == ["f1"]
            assert list(client.get("/v1/stats")["networks_unavailable"]) == ["chnet"]
            netns_mod.create(ns)
            wait_for(
                lambda: client.get("/v1/stats")["networks_unavailable"] == {},
                60,
                "chnet available again",
            )
            plug()  # the functions' and the endpoints' ports, back with their instances
            wait_for(
                lambda: [f for f in chain_flows() if "tp_dst=80" in f] == flows,
                60,
                lambda: f"the chain's flows again: {flows} {chain_flows()}\n{daemon.log()[-3000:]}",
            )
            client.delete("/v1/chains/web")
        finally:
            client.close()  # a failed wait must not leave its socket to the GC
    finally:
        with contextlib.suppress(Exception):
            daemon.stop()
        with contextlib.suppress(Exception):
            purge(daemon)
        if netns_mod.exists(ns):
            netns_mod.delete(ns)
