"""Security groups on a real ovs-vswitchd (userspace datapath): real packets, real conntrack.

Every verdict here is computed by the reference evaluator of the model
(``tests/fixtures/secgroups_ref.py``, independent of the compiler) and checked with real TCP
connects, UDP datagrams and pings between network namespaces plugged into our own switch.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import time
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from fluidedge.codec.net import ethernet, ipv4
from fluidedge.codec.net.checksum import transport_checksum
from fluidedge.linux import netns as netns_mod
from fluidedge.linux.packet import packet_socket
from fluidedge.ovs.ofctl import Ofctl, conntrack
from fluidedge.secgroups.driver import FirewallDriver
from fluidedge.secgroups.model import AddressPair, Port, Rule, SecurityGroup, default_group
from fluidedge.secgroups.nft import Binding
from fluidedge.secgroups.ovs_driver import OvsConntrack, OvsRenderer, parse_conntrack
from tests.fixtures.secgroups_ref import Conn, expected
from tests.fixtures.wait import wait_until

from .ovs_lab import Host, OvsLab

pytestmark = pytest.mark.root

ip = ipaddress.ip_address
ALLOW_T, DENY_T = 5.0, 0.8
ZONES = {"net-a": 10, "net-b": 11}


def _port(h: Host, groups: tuple[str, ...], **kw: object) -> Port:
    return Port(
        id=f"{h.network}.{h.name}",
        device=h.device,
        network=h.network,
        zone=ZONES[h.network],
        mac=h.mac,
        fixed_ips=tuple(ip(a.split("/")[0]) for a in h.addresses),
        groups=groups,
        **kw,  # type: ignore[arg-type]
    )


WEB = SecurityGroup(
    id="web",
    rules=(
        Rule(id="http", direction="ingress", protocol=6, port_range_min=8080, port_range_max=8090),
        Rule(
            id="ping",
            direction="ingress",
            protocol=1,
            icmp_type=8,
            remote_ip_prefix=ipaddress.ip_network("10.0.0.0/30"),
        ),
        Rule(id="dns", direction="ingress", protocol=17, port_range_min=5353),
        Rule(id="out", direction="egress"),
    ),
)
DB = SecurityGroup(
    id="db",
    rules=(
        Rule(id="pg", direction="ingress", protocol=6, port_range_min=5432, remote_group="web"),
        Rule(id="pg6", direction="ingress", ethertype="IPv6", protocol=6, port_range_min=5432),
    ),
)


def _four(lab: OvsLab, net: str = "net-a") -> dict[str, Host]:
    lab.network(net)
    return {
        name: lab.host(
            name,
            net,
            f"02:00:00:00:0{1 if net == 'net-a' else 2}:0{n}",
            f"10.0.0.{n}/24",
            f"fd00::{n}/64",
        )
        for n, name in enumerate(("a", "b", "c", "d"), start=1)
    }


@contextlib.contextmanager
def _firewall(
    lab: OvsLab, ports: list[Port], groups: list[SecurityGroup]
) -> Iterator[FirewallDriver]:
    renderer = OvsRenderer(lambda _netns: lab.daemons)
    fw = FirewallDriver(renderer, OvsConntrack(lambda _netns: lab.daemons))
    with fw.defer_apply():
        for network, bridge in lab.bridges.items():
            fw.bind_network(Binding(network=network, bridge=bridge))
        for g in groups:
            fw.set_group(g)
        for p in ports:
            fw.prepare_port_filter(p)
    yield fw


def _deleted(fw: FirewallDriver) -> int:
    assert isinstance(fw.conntrack, OvsConntrack)
    return fw.conntrack.deleted


def _flows(fw: FirewallDriver, bridge: str) -> int:
    assert isinstance(fw.renderer, OvsRenderer)
    return len(fw.renderer.flows(bridge))


def test_traffic_matrix_matches_the_reference_evaluator(ovs_lab: OvsLab) -> None:
    hosts = _four(ovs_lab)
    ports = [
        _port(hosts["a"], ("default",)),
        _port(hosts["b"], ("web",)),
        _port(hosts["c"], (), port_security=False),
        _port(hosts["d"], ("db", "default")),
    ]
    groups = [default_group(), WEB, DB]
    by_name = {p.id.split(".")[1]: p for p in ports}
    with _firewall(ovs_lab, ports, groups):
        udp = {}
        for h in hosts.values():
            for port in (8080, 5432, 9000):
                ovs_lab.tcp_server(h, port)
                ovs_lab.tcp_server(h, port, socket.AF_INET6)
            udp[h.name] = ovs_lab.udp_server(h, 5353)
        cells = []
        for src in hosts.values():
            for dst in hosts.values():
                if src is dst:
                    continue
                for kind, port in (
                    ("tcp", 8080),
                    ("tcp", 5432),
                    ("tcp", 9000),
                    ("udp", 5353),
                    ("icmp", None),
                    ("tcp6", 5432),
                ):
                    proto = {"tcp": 6, "tcp6": 6, "udp": 17, "icmp": 1}[kind]
                    v6 = kind == "tcp6"
                    conn = Conn(
                        proto,
                        src.ip6 if v6 else src.ip4,
                        dst.ip6 if v6 else dst.ip4,
                        port,
                        8 if kind == "icmp" else None,
                        0 if kind == "icmp" else None,
                    )
                    want = expected(
                        by_name[src.name], by_name[dst.name], conn, {g.id: g for g in groups}, ports
                    )
                    timeout = ALLOW_T if want else DENY_T
                    if kind.startswith("tcp"):
                        got = ovs_lab.tcp_connects(src, conn.dst, port or 0, timeout)
                    elif kind == "udp":
                        got = ovs_lab.udp_reaches(src, udp[dst.name], conn.dst, 5353, timeout)
                    else:
                        got = ovs_lab.pings(src, conn.dst, timeout)
                    cells.append((src.name, dst.name, kind, port, want, got))
        wrong = [c for c in cells if c[4] != c[5]]
        assert not wrong, wrong
        # The matrix exercised both verdicts in every protocol.
        for kind in ("tcp", "udp", "icmp", "tcp6"):
            assert {c[4] for c in cells if c[2] == kind} == {True, False}, kind


def _stream(lab: OvsLab, src: Host, dst: Host, port: int) -> tuple[socket.socket, socket.socket]:
    server = lab.tcp_server(dst, port)
    client = lab.socket_in(src, socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(ALLOW_T)
    client.connect((dst.ip4, port))
    server.settimeout(ALLOW_T)
    conn, _ = server.accept()
    return client, conn


def _delivers(client: socket.socket, conn: socket.socket, timeout: float) -> bool:
    token = str(time.monotonic_ns()).encode()
    try:
        client.sendall(token)
    except OSError:
        return False
    conn.settimeout(timeout)
    got = b""
    deadline = time.monotonic() + timeout
    try:
        while token not in got and time.monotonic() < deadline:
            chunk = conn.recv(4096)
            if not chunk:
                return False
            got += chunk
    except OSError:
        return False
    return token in got


def test_stateful_reply_cut_on_removal_and_unrelated_change_keeps(ovs_lab: OvsLab) -> None:
    hosts = _four(ovs_lab)
    a, b = hosts["a"], hosts["b"]
    out_only = SecurityGroup(id="client", rules=(Rule(id="o", direction="egress"),))
    with _firewall(ovs_lab, [_port(a, ("client",)), _port(b, ("web",))], [out_only, WEB]) as fw:
        # The reply needs no rule: a has no ingress rule at all.
        client, conn = _stream(ovs_lab, a, b, 8080)
        assert _delivers(client, conn, ALLOW_T)
        conn.sendall(b"reply")
        client.settimeout(ALLOW_T)
        assert client.recv(16) == b"reply"
        zone = ZONES["net-a"]
        assert any(e.dport == 8080 for e in parse_conntrack(conntrack(ovs_lab.daemons, zone)))
        # An unrelated change (a new rule on another port range) keeps the live stream.
        extra = Rule(id="x", direction="ingress", protocol=17, port_range_min=9999)
        fw.update_security_group_rules("web", (*WEB.rules, extra))
        assert _delivers(client, conn, ALLOW_T)
        assert _deleted(fw) == 0
        # Removing the rule that allowed it cuts it: entry deleted, packets no longer pass.
        fw.update_security_group_rules("web", tuple(r for r in WEB.rules if r.id != "http"))
        assert _deleted(fw) >= 1
        assert not any(
            e.dport == 8080 and str(e.src) == a.ip4
            for e in parse_conntrack(conntrack(ovs_lab.daemons, zone))
        )
        assert not _delivers(client, conn, DENY_T)
        assert not ovs_lab.tcp_connects(a, b.ip4, 8080, DENY_T)
        client.close()
        conn.close()


def _tcp_segment(src: IPv4Address, dst: IPv4Address, sport: int, dport: int, flags: int) -> bytes:
    header = struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000, 5 << 4, flags, 65535, 0, 0)
    csum = transport_checksum(src.packed, dst.packed, 6, header)
    return header[:16] + struct.pack("!H", csum) + header[18:]


def _sniffer(lab: OvsLab, host: Host) -> socket.socket:
    return netns_mod.call_in_netns(
        host.netns, lambda: packet_socket("eth0", setup=lambda s: s.settimeout(0.2))
    )


def _raw_sender(lab: OvsLab, host: Host) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind(("eth0", 0))
        return s

    return netns_mod.call_in_netns(host.netns, make)


def _seen(sniffer: socket.socket, needle: bytes, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = sniffer.recv(2048)
        except OSError:
            continue
        if needle in frame:
            return True
    return False


def test_ack_without_syn_is_dropped_and_a_syn_passes(ovs_lab: OvsLab) -> None:
    hosts = _four(ovs_lab)
    a, b = hosts["a"], hosts["b"]
    out_only = SecurityGroup(id="client", rules=(Rule(id="o", direction="egress"),))
    with _firewall(ovs_lab, [_port(a, ("client",)), _port(b, ("web",))], [out_only, WEB]):
        ovs_lab.tcp_server(b, 8080)
        assert ovs_lab.tcp_connects(a, b.ip4, 8080, ALLOW_T)  # neighbours learned, path open
        sniff = _sniffer(ovs_lab, b)
        send = _raw_sender(ovs_lab, a)
        src, dst = IPv4Address(a.ip4), IPv4Address(b.ip4)
        for flags, sport, should_pass in ((0x10, 41001, False), (0x02, 41002, True)):
            seg = _tcp_segment(src, dst, sport, 8080, flags)
            frame = ethernet.encode(
                ethernet.mac(b.mac),
                ethernet.mac(a.mac),
                0x0800,
                ipv4.encode(src.packed, dst.packed, 6, seg),
            )
            marker = struct.pack("!HH", sport, 8080)
            seen = False
            for _ in range(3):
                send.send(frame)
                if _seen(sniff, marker, 0.6):
                    seen = True
                    break
            assert seen == should_pass, (flags, seen)
        sniff.close()
        send.close()


def test_spoofing_fails_and_allowed_pairs_work(ovs_lab: OvsLab) -> None:
    hosts = _four(ovs_lab)
    a, b, m = hosts["a"], hosts["b"], hosts["c"]
    anything = SecurityGroup(
        id="open",
        rules=(Rule(id="i", direction="ingress"), Rule(id="e", direction="egress")),
    )
    vip = "10.0.0.100"
    ports = [
        _port(a, ("open",)),
        _port(b, ("open",)),
        _port(m, ("open",), allowed_address_pairs=(AddressPair(ipaddress.ip_network(vip)),)),
    ]
    with _firewall(ovs_lab, ports, [anything]):
        # The attack: m takes b's address and serves b's port; a's requests must all reach b.
        ovs_lab.sh(m, "ip", "addr", "add", f"{b.ip4}/32", "dev", "eth0")
        serving = {}
        for h in (b, m):
            serving[h.name] = ovs_lab.tcp_server(h, 7000)
        # m announces b's address (gratuitous ARP reply carrying b's IP and m's MAC).
        send = _raw_sender(ovs_lab, m)
        sniff = _sniffer(ovs_lab, a)
        arp = struct.pack(
            "!HHBBH6s4s6s4s",
            1,
            0x0800,
            6,
            4,
            2,
            ethernet.mac(m.mac),
            IPv4Address(b.ip4).packed,
            ethernet.mac(a.mac),
            IPv4Address(a.ip4).packed,
        )
        frame = ethernet.encode(ethernet.mac(a.mac), ethernet.mac(m.mac), 0x0806, arp)
        for _ in range(3):
            send.send(frame)
        assert not _seen(sniff, ethernet.mac(m.mac) + IPv4Address(b.ip4).packed, 1.0)
        # And m sending from b's address does not get through at all.
        ovs_lab.tcp_server(a, 7001)
        assert not _spoofed_connect(ovs_lab, m, b.ip4, a.ip4, 7001)
        hijacked = 0
        for _ in range(6):
            assert ovs_lab.tcp_connects(a, b.ip4, 7000, ALLOW_T)
            serving[m.name].setblocking(False)
            with contextlib.suppress(BlockingIOError):
                serving[m.name].accept()[0].close()
                hijacked += 1
        assert hijacked == 0
        neigh = ovs_lab.sh(a, "ip", "neigh", "show", b.ip4).stdout
        assert m.mac not in neigh, neigh
        # The allowed pair: m may use the VIP, and a reaches it there.
        ovs_lab.sh(m, "ip", "addr", "add", f"{vip}/24", "dev", "eth0")
        vip_server = ovs_lab.tcp_server(m, 7002)
        assert ovs_lab.tcp_connects(a, vip, 7002, ALLOW_T)
        vip_server.close()
        send.close()
        sniff.close()


def _spoofed_connect(lab: OvsLab, host: Host, src_ip: str, dst_ip: str, port: int) -> bool:
    s = lab.socket_in(host, socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(DENY_T)
    try:
        s.bind((src_ip, 0))
        s.connect((dst_ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_overlapping_subnets_stay_isolated_by_zone(ovs_lab: OvsLab) -> None:
    net_a = _four(ovs_lab, "net-a")
    net_b = _four(ovs_lab, "net-b")
    only_pg = SecurityGroup(
        id="pg-only",
        rules=(
            Rule(id="pg", direction="ingress", protocol=6, port_range_min=5432),
            Rule(id="both", direction="ingress", protocol=6, port_range_min=8085),
            Rule(id="o", direction="egress"),
        ),
    )
    ports = [
        _port(net_a["a"], ("web",)),
        _port(net_a["b"], ("web",)),
        _port(net_b["a"], ("pg-only",)),
        _port(net_b["b"], ("pg-only",)),
    ]
    with _firewall(ovs_lab, ports, [WEB, only_pg]):
        for h in (net_a["b"], net_b["b"]):
            ovs_lab.tcp_server(h, 8080)
            ovs_lab.tcp_server(h, 5432)
        # Same addresses, same ports, different policies per network.
        assert ovs_lab.tcp_connects(net_a["a"], "10.0.0.2", 8080, ALLOW_T)
        assert not ovs_lab.tcp_connects(net_b["a"], "10.0.0.2", 8080, DENY_T)
        assert ovs_lab.tcp_connects(net_b["a"], "10.0.0.2", 5432, ALLOW_T)
        assert not ovs_lab.tcp_connects(net_a["a"], "10.0.0.2", 5432, DENY_T)
        # Live connections with identical 5-tuples, one per zone.
        ca, sa = _stream_pair(ovs_lab, net_a["a"], net_a["b"], 8085, 45000)
        cb, sb = _stream_pair(ovs_lab, net_b["a"], net_b["b"], 8085, 45000)
        entries = parse_conntrack(conntrack(ovs_lab.daemons))
        zones = {e.zone for e in entries if e.sport == 45000}
        assert zones == {10, 11}
        for sock in (ca, sa, cb, sb):
            sock.close()


def _stream_pair(
    lab: OvsLab, src: Host, dst: Host, port: int, sport: int
) -> tuple[socket.socket, socket.socket]:
    server = lab.tcp_server(dst, port)
    client = lab.socket_in(src, socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    client.bind((src.ip4, sport))
    client.settimeout(ALLOW_T)
    client.connect((dst.ip4, port))
    server.settimeout(ALLOW_T)
    return client, server.accept()[0]


def test_restart_replaces_the_table_without_duplicates_or_stale_flows(ovs_lab: OvsLab) -> None:
    hosts = _four(ovs_lab)
    ports = [_port(hosts["a"], ("default",)), _port(hosts["b"], ("web",))]
    bridge = ovs_lab.bridges["net-a"]
    with _firewall(ovs_lab, ports, [default_group(), WEB]) as first:
        installed = sorted(Ofctl(ovs_lab.daemons, bridge).dump())
        assert len(installed) == _flows(first, bridge)
    # Something stale of ours appears (e.g. left by an older version), and a flow of another
    # component (a chain's cookie), then the driver restarts: ours is replaced, theirs stays.
    Ofctl(ovs_lab.daemons, bridge).bundle(
        [
            "add cookie=0x5e5e,table=72,priority=70,reg5=99,actions=drop",
            "add cookie=0xc4a1000100000001,table=0,priority=300,in_port=99,udp,actions=drop",
        ]
    )
    with _firewall(ovs_lab, ports, [default_group(), WEB]) as again:
        after = sorted(Ofctl(ovs_lab.daemons, bridge).dump())
        theirs = [f for f in after if f.startswith("cookie=0xc4a1000100000001,")]
        assert len(theirs) == 1
        assert "in_port=99" in theirs[0]
        after.remove(theirs[0])
        assert after == installed
        assert len(after) == _flows(again, bridge)
        ovs_lab.tcp_server(hosts["b"], 8080)
        assert ovs_lab.tcp_connects(hosts["a"], hosts["b"].ip4, 8080, ALLOW_T)


@contextlib.contextmanager
def _web_and_db_ports(
    lab: OvsLab,
) -> Iterator[tuple[Host, Host, str, Ofctl, FirewallDriver, list[str]]]:
    """a (default group) and b (web: 8080 open, 5432 not) on net-a, both ports served: the
    two hosts, the bridge, its flow table, the firewall and the flows it installed."""
    hosts = _four(lab)
    a, b = hosts["a"], hosts["b"]
    bridge = lab.bridges["net-a"]
    ofctl = Ofctl(lab.daemons, bridge)
    with _firewall(lab, [_port(a, ("default",)), _port(b, ("web",))], [default_group(), WEB]) as fw:
        installed = sorted(ofctl.dump())
        lab.tcp_server(b, 8080)
        lab.tcp_server(b, 5432)
        yield a, b, bridge, ofctl, fw, installed


def test_flows_changed_from_outside_are_installed_again(ovs_lab: OvsLab) -> None:
    """Flows of ours deleted (``ovs-ofctl del-flows``) or added with our cookie from outside
    leave the ports filtered otherwise than the policy says; the check counts our flows and
    the next apply installs the table whole. A flow of another component is not ours to
    judge."""
    with _web_and_db_ports(ovs_lab) as (a, b, bridge, ofctl, fw, installed):
        assert fw.heal() == {}

        ofctl.bundle(["add cookie=0xc4a1000100000001,table=0,priority=300,in_port=99,actions=drop"])
        assert fw.heal() == {}  # not ours

        # a flow with our cookie that lets everything through
        ofctl.bundle(["add cookie=0x5e5e,table=0,priority=65000,actions=NORMAL"])
        assert ovs_lab.tcp_connects(a, b.ip4, 5432, ALLOW_T)
        lost = fw.heal()
        assert set(lost) == {"net-a"}
        assert (
            f"{len(installed) + 1} flows of ours on bridge {bridge} instead of {len(installed)}"
            in lost["net-a"]
        )
        # (the datapath's cached flows are revalidated after a table change, not at once)
        assert wait_until(lambda: not ovs_lab.tcp_connects(a, b.ip4, 5432, DENY_T), 10)
        assert ovs_lab.tcp_connects(a, b.ip4, 8080, ALLOW_T)

        # our classifier deleted: the secure bridge forwards nothing from the ports
        ofctl.bundle(["delete cookie=0x5e5e/-1,table=0"])
        assert wait_until(lambda: not ovs_lab.tcp_connects(a, b.ip4, 8080, DENY_T), 10)
        lost = fw.heal()
        assert set(lost) == {"net-a"}
        assert "changed from outside" in lost["net-a"]
        assert ovs_lab.tcp_connects(a, b.ip4, 8080, ALLOW_T)
        assert wait_until(lambda: not ovs_lab.tcp_connects(a, b.ip4, 5432, DENY_T), 10)
        assert fw.heal() == {}
        ours = [f for f in ofctl.dump() if not f.startswith("cookie=0xc4a1")]
        assert sorted(ours) == installed


def test_flows_replaced_from_outside_with_the_count_kept_are_seen(ovs_lab: OvsLab) -> None:
    """``ovs-ofctl mod-flows`` changes our flows' actions in place: as many flows of ours as
    installed, and every port let through. The count alone missed it; the digest of the
    flows, learnt at the first check after our apply, does not. A later apply of ours is
    learnt again, not taken for a change from outside."""
    with _web_and_db_ports(ovs_lab) as (a, b, bridge, ofctl, fw, installed):
        assert fw.heal() == {}  # learns the digest
        assert not ovs_lab.tcp_connects(a, b.ip4, 5432, DENY_T)

        ofctl.bundle(["modify cookie=0x5e5e/-1,table=0,actions=NORMAL"])
        assert len(ofctl.dump()) == len(installed)  # the count is the same
        assert wait_until(lambda: ovs_lab.tcp_connects(a, b.ip4, 5432, ALLOW_T), 10)
        lost = fw.heal()
        assert set(lost) == {"net-a"}
        assert (
            f"flows of ours on bridge {bridge} changed from outside (a flow's match or actions "
            "replaced)" in lost["net-a"]
        )
        assert sorted(ofctl.dump()) == installed
        assert wait_until(lambda: not ovs_lab.tcp_connects(a, b.ip4, 5432, DENY_T), 10)
        assert ovs_lab.tcp_connects(a, b.ip4, 8080, ALLOW_T)
        assert fw.heal() == {}  # the reinstalled table is learnt again

        # a change of ours (5432 opened) is not one from outside: learnt again, and held
        pg = Rule(id="pg", direction="ingress", protocol=6, port_range_min=5432)
        fw.update_security_group_rules("web", (*WEB.rules, pg))
        assert ovs_lab.tcp_connects(a, b.ip4, 5432, ALLOW_T)
        assert fw.heal() == {}
        assert fw.heal() == {}
        assert ovs_lab.tcp_connects(a, b.ip4, 5432, ALLOW_T)
