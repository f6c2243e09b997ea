"""Security groups and a service chain on one Open vSwitch network (real ovs-vswitchd, real
packets): the groups' verdict is taken where a packet enters (its source port's egress and its
destination port's ingress), then the chain steers what was accepted (table 0 again, reg13),
so traffic the groups allow traverses the function, traffic they deny is dropped even when a
chain's classifier matches it, and neither component's install deletes the other's flows.
"""

from __future__ import annotations

import contextlib
import ipaddress
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluidedge.chains.model import (
    ChainState,
    FlowClassifier,
    PortChain,
    PortPair,
    PortPairGroup,
)
from fluidedge.chains.ovs import OvsChains
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.secgroups.driver import FirewallDriver
from fluidedge.secgroups.model import Port, Rule, SecurityGroup
from fluidedge.secgroups.nft import Binding
from fluidedge.secgroups.ovs_driver import OvsConntrack, OvsRenderer
from tests.fixtures.wait import wait_until
from tests.functional.chains.chain_lab import ChainLab, Function, echo

pytestmark = pytest.mark.root

ip = ipaddress.ip_address
PORT = 7000
ZONE = 21
CLIENT = SecurityGroup(id="cli", rules=(Rule(id="out", direction="egress"),))


def _server(*extra: Rule) -> SecurityGroup:
    """The server's group: UDP PORT in (not PORT + 1), plus ``extra``."""
    return SecurityGroup(
        id="srv",
        rules=(Rule(id="u", direction="ingress", protocol=17, port_range_min=PORT), *extra),
    )


@pytest.fixture
def chain_lab(tmp_path: Path) -> Iterator[ChainLab]:
    lab = ChainLab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def _chain(lab: ChainLab, fn: Function) -> ChainState:
    """A's UDP to B on PORT..PORT+1 steered through ``fn`` (replies back through it)."""
    a, b = lab.hosts["net/a"], lab.hosts["net/b"]
    return ChainState(
        port_pairs={fn.name: PortPair(fn.name, fn.ingress, fn.egress)},
        groups={"g": PortPairGroup("g", (fn.name,))},
        classifiers={
            "c": FlowClassifier(
                "c",
                a.device,
                b.device,
                protocol=17,
                destination_ip_prefix=ipaddress.ip_network("10.0.0.2/32"),
                destination_port_range_min=PORT,
                destination_port_range_max=PORT + 1,
            )
        },
        chains={"ch": PortChain("ch", 1, ("g",), ("c",))},
    )


def _ports(lab: ChainLab, fn: Function) -> list[Port]:
    a, b = lab.hosts["net/a"], lab.hosts["net/b"]
    hosts = [
        Port(
            id=f"net.{h.name}",
            device=h.device,
            network="net",
            zone=ZONE,
            mac=h.mac,
            fixed_ips=(ip(h.ip4),),
            groups=groups,
        )
        for h, groups in ((a, ("cli",)), (b, ("srv",)))
    ]
    # A transparent function forwards other hosts' frames: its ports carry no port security
    # (as networking-sfc's service function ports).
    legs = [
        Port(
            id=f"net.{dev}",
            device=dev,
            network="net",
            zone=ZONE,
            mac=f"02:fe:00:00:00:0{n}",
            port_security=False,
        )
        for n, dev in enumerate((fn.ingress, fn.egress), start=1)
    ]
    return hosts + legs


@contextlib.contextmanager
def _firewall(lab: ChainLab, ports: list[Port]) -> Iterator[FirewallDriver]:
    fw = FirewallDriver(
        OvsRenderer(lambda _netns: lab.daemons), OvsConntrack(lambda _netns: lab.daemons)
    )
    with fw.defer_apply():
        fw.bind_network(Binding(network="net", bridge=lab.bridge))
        for g in (CLIENT, _server()):
            fw.set_group(g)
        for p in ports:
            fw.prepare_port_filter(p)
    yield fw


def test_groups_filter_what_a_chain_steers_and_changes_keep_both(chain_lab: ChainLab) -> None:
    lab = chain_lab
    lab.host("a", "net", "02:00:00:00:0a:01", "10.0.0.1/24")
    lab.host("b", "net", "02:00:00:00:0a:02", "10.0.0.2/24")
    f1 = lab.function("f1")
    chains = OvsChains(lab.daemons, lab.bridge)
    chains.apply(_chain(lab, f1))
    lab.udp_echo(lab.hosts["net/b"], PORT)
    lab.udp_echo(lab.hosts["net/b"], PORT + 1)
    client = lab.udp_client(lab.hosts["net/a"])
    sport = client.getsockname()[1]
    with _firewall(lab, _ports(lab, f1)) as fw:
        # The groups' first install on the bridge left the chain's flows alone.
        assert chains.intact()
        # Allowed by the server's group: through the function, both ways.
        assert echo(client, ("10.0.0.2", PORT))
        seen = f1.seen()
        assert seen["in"][(sport, PORT)] >= 1
        assert seen["out"][(PORT, sport)] >= 1
        # Denied by the group (PORT + 1), though the chain's classifier takes it: dropped
        # before it is steered (the function never sees it).
        assert not echo(client, ("10.0.0.2", PORT + 1), timeout=1.0)
        assert (sport, PORT + 1) not in f1.seen()["in"]

        # A stream through the chain while the groups change (unrelated rules come and go,
        # a member joins): nothing lost, the chain's flows untouched throughout.
        received: list[int] = []
        sent = [0]
        stop = threading.Event()

        def stream() -> None:
            client.settimeout(0.0)
            while not stop.is_set():
                client.sendto(struct.pack("!Q", sent[0]), ("10.0.0.2", PORT))
                sent[0] += 1
                time.sleep(0.002)
                with contextlib.suppress(OSError):
                    while True:
                        received.append(struct.unpack("!Q", client.recv(64)[:8])[0])

        thread = threading.Thread(target=stream)
        thread.start()
        try:
            assert wait_until(lambda: len(received) > 100, timeout=10)
            extra = Rule(id="t", direction="ingress", protocol=6, port_range_min=9000)
            for round_ in range(3):
                fw.set_group(_server(extra) if round_ % 2 == 0 else _server())
                mark = len(received)
                assert wait_until(lambda m=mark: len(received) > m + 50, timeout=10)
            fw.set_group(SecurityGroup(id="cli", rules=(*CLIENT.rules, extra)))
            mark = len(received)
            assert wait_until(lambda: len(received) > mark + 50, timeout=10)
        finally:
            stop.set()
            thread.join()
        client.settimeout(1.0)
        with contextlib.suppress(OSError):
            while True:  # the last echoes in flight
                received.append(struct.unpack("!Q", client.recv(64)[:8])[0])
        assert len(set(received)) == sent[0], (len(set(received)), sent[0])
        assert chains.intact()
        assert f1.seen()["in"][(sport, PORT)] >= 100

        # The group no longer allows PORT: dropped although the chain still matches, and the
        # live flow is cut.
        fw.set_group(SecurityGroup(id="srv", rules=()))
        f1.seen()
        assert not echo(client, ("10.0.0.2", PORT), timeout=1.0)
        assert (sport, PORT) not in f1.seen()["in"]
        # Back again: through the function.
        fw.set_group(_server())
        assert echo(client, ("10.0.0.2", PORT))
        assert f1.seen()["in"][(sport, PORT)] >= 1
        assert chains.intact()
    client.close()


def test_a_chain_change_keeps_the_groups_flows(chain_lab: ChainLab) -> None:
    lab = chain_lab
    lab.host("a", "net", "02:00:00:00:0a:01", "10.0.0.1/24")
    lab.host("b", "net", "02:00:00:00:0a:02", "10.0.0.2/24")
    f1 = lab.function("f1")
    lab.udp_echo(lab.hosts["net/b"], PORT)
    lab.udp_echo(lab.hosts["net/b"], PORT + 1)
    client = lab.udp_client(lab.hosts["net/a"])
    with _firewall(lab, _ports(lab, f1)) as fw:
        assert isinstance(fw.renderer, OvsRenderer)
        ours = len(fw.renderer.flows(lab.bridge))
        chains = OvsChains(lab.daemons, lab.bridge, drain=0.0)
        chains.apply(_chain(lab, f1))  # the chain's first install reconciles its cookies only
        dump = Ofctl(lab.daemons, lab.bridge).dump("cookie=0x5e5e/-1")
        assert len(dump) == ours
        assert echo(client, ("10.0.0.2", PORT))
        assert f1.seen()["in"][(client.getsockname()[1], PORT)] >= 1
        chains.apply(ChainState({}, {}, {}, {}))  # the chain goes: direct, still filtered
        assert len(Ofctl(lab.daemons, lab.bridge).dump("cookie=0x5e5e/-1")) == ours
        assert echo(client, ("10.0.0.2", PORT))
        assert not echo(client, ("10.0.0.2", PORT + 1), timeout=1.0)
    client.close()
