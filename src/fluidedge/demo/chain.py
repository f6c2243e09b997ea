"""``fluidedge demo --chain``: the demo's service traffic crosses a service function chain.

The instance network ``apps`` is then an ``ovs`` network (the chains' data plane) in the lab's
host namespace, with the lab's subnet; a veth links it to the lab's apps bridge, where the
TOF's apps gateway is, so the TOF's offloaded packets enter the switch by that link's port.
Two function instances of the built-in templates (docs/chains.md) sit between the TOF and the
edge app: a vFirewall whose rule drops one UE's traffic (the last UE, when there are two or
more; otherwise it only counts) and a counter. A flow classifier names the demo's TOF service
(``tof_service``): every UE's HTTP to the service goes TOF → firewall → counter → app and
the answers back through both in reverse; the live table shows what each function saw.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from fluidedge.demo.model import DEMO_SERVICE_NAME
from fluidedge.linux.proc import run
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.ovs.vsctl import Vsctl

if TYPE_CHECKING:
    from rich.console import Console

    from fluidedge.core.client import Client
    from fluidedge.lab.lab import Lab

FIREWALL, COUNTER = "demo-fw", "demo-ctr"
_PACKETS = re.compile(r"counter packets (\d+) ")


@dataclass
class DemoChain:
    """What the demo's chain is made of (names of its pieces, what the firewall blocks)."""

    link_port: str  # the switch port of the link to the lab's apps bridge (the TOF's side)
    link_peer: str  # its other end, on the lab's apps bridge
    blocked: str | None = None  # "ue2 10.x.y.z": the UE the firewall drops
    functions: list[str] = field(default_factory=lambda: [FIREWALL, COUNTER])


def names(prefix: str) -> tuple[str, str, str]:
    """The ovs bridge and the two ends of the link (interface names: at most 15 bytes)."""
    return f"{prefix}-sfc"[:15], f"{prefix}-sl0"[:15], f"{prefix}-sl1"[:15]


def instances_section(lab: Lab, prefix: str) -> dict[str, object]:
    """``[instances]`` with ``apps`` an ``ovs`` network in the lab's host namespace."""
    bridge, _, _ = names(prefix)
    network = {
        "bridge": bridge,
        "netns": lab.host_ns,
        "subnet": lab.apps_subnet,
        "driver": "ovs",
    }
    return {"networks": {"apps": network}}


def link(lab: Lab, state_dir: Path, prefix: str) -> DemoChain:
    """A veth between the lab's apps bridge (where the TOF's apps gateway is) and the
    network's switch: the TOF's port on the chains' network."""
    bridge, port, peer = names(prefix)
    ns = lab.host_ns
    run(["ip", "-n", ns, "link", "add", port, "type", "veth", "peer", "name", peer])
    for dev in (port, peer):
        # The userspace datapath forwards segments whose checksum a veth left to offload.
        run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"])
        run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
             f"net.ipv6.conf.{dev}.disable_ipv6=1"])  # fmt: skip
    run(["ip", "-n", ns, "link", "set", peer, "master", lab.apps_bridge, "up"])
    run(["ip", "-n", ns, "link", "set", port, "up"])
    ovs_bridges.configure(state_dir / "instances")
    Vsctl(ovs_bridges.switch(ns)).add_port(bridge, port, {"fluidedge-network": "apps"})
    return DemoChain(link_port=port, link_peer=peer)


def _ports(view: dict[str, Any]) -> dict[str, str]:
    return {i["name"]: i["host_ifname"] for i in view["interfaces"]}


def build(client: Client, lab: Lab, chain: DemoChain, app_view: dict[str, Any],
          console: Console) -> None:  # fmt: skip
    """The functions (instances of the built-in templates), their pairs and groups, the
    classifier of the demo service's offloaded HTTP, and the chain."""
    ues = list(lab.ues.items())
    rules = ["meta l4proto tcp counter"]
    if len(ues) >= 2:
        name, address = ues[-1]
        chain.blocked = f"{name} {address}"
        rules = [f"ip saddr {address} counter drop"]
    client.post(
        "/v1/chains/function-templates",
        {"kind": "firewall", "name": FIREWALL, "network": "apps", "rules": rules},
    )
    client.post(
        "/v1/chains/function-templates", {"kind": "counter", "name": COUNTER, "network": "apps"}
    )
    groups = []
    for template in (FIREWALL, COUNTER):
        view = client.post("/v1/instances", {"name": template, "template": template})
        legs = _ports(view)
        client.post(
            "/v1/chains/port-pairs",
            {"id": template, "ingress": legs["eth0"], "egress": legs["eth1"]},
        )
        client.post("/v1/chains/port-pair-groups", {"id": template, "port_pairs": [template]})
        groups.append(template)
    client.post(
        "/v1/chains/flow-classifiers",
        {
            "id": "demo-web",
            "protocol": "tcp",
            "logical_source_port": chain.link_port,
            "logical_destination_port": _ports(app_view)["eth0"],
            "tof_service": DEMO_SERVICE_NAME,
        },
    )
    client.post(
        "/v1/chains",
        {"id": "demo", "port_pair_groups": groups, "flow_classifiers": ["demo-web"]},
    )
    blocked = f"; the firewall drops {chain.blocked}" if chain.blocked else ""
    console.print(
        f"Chain demo: TOF ({chain.link_port}) -> {FIREWALL} -> {COUNTER} -> the app, replies "
        f"in reverse (service {DEMO_SERVICE_NAME}'s offloaded TCP){blocked}"
    )


def seen(client: Client) -> dict[str, int]:
    """What the chain's functions saw: the requests and replies the switch handed each
    function, and the packets the firewall's rules dropped (its nft counters)."""
    out: dict[str, int] = {}
    for pair in (FIREWALL, COUNTER):
        got = client.get(f"/v1/chains/port-pairs/{pair}/packets")
        out[f"{pair} requests"] = int((got.get("ingress") or {}).get("to_function", 0))
        out[f"{pair} replies"] = int((got.get("egress") or {}).get("to_function", 0))
    ruleset = client.get(f"/v1/chains/firewalls/{FIREWALL}/rules")["ruleset"]
    out["firewall dropped"] = sum(
        int(m.group(1)) for line in ruleset.splitlines() if "drop" in line
        for m in [_PACKETS.search(line)] if m is not None
    )  # fmt: skip
    return out


def table(client: Client, chain: DemoChain) -> Table:
    """The live view of the chain: what each function was handed, what the firewall dropped."""
    got = seen(client)
    title = "service chain: TOF -> firewall -> counter -> app"
    if chain.blocked:
        title += f" (firewall drops {chain.blocked})"
    view = Table("function", "requests in", "replies in", "dropped", title=title)
    view.add_row(
        FIREWALL,
        str(got[f"{FIREWALL} requests"]),
        str(got[f"{FIREWALL} replies"]),
        str(got["firewall dropped"]),
    )
    view.add_row(COUNTER, str(got[f"{COUNTER} requests"]), str(got[f"{COUNTER} replies"]), "-")
    return view
