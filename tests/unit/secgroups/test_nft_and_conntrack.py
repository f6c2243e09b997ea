"""The nftables text and the conntrack listing parser (pure; the functional tests run both
against the kernel)."""

from __future__ import annotations

import ipaddress

from fluidedge.secgroups.compiler import compile_program
from fluidedge.secgroups.conntrack import delete_argv, parse_entries
from fluidedge.secgroups.model import AddressPair, Port, Rule, SecurityGroup, default_group
from fluidedge.secgroups.nft import Binding, render_network, render_removal, table_name

ip = ipaddress.ip_address

LISTING = """\
tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=5432 src=10.0.0.2 \
dst=10.0.0.1 sport=5432 dport=40000 [ASSURED] mark=0 zone=21 use=1
icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=9396 src=10.0.0.2 dst=10.0.0.1 \
type=0 code=0 id=9396 mark=0 zone=21 use=1
udp      17 20 src=fd00::1 dst=fd00::2 sport=5353 dport=53 [UNREPLIED] src=fd00::2 dst=fd00::1 \
sport=53 dport=5353 mark=0 zone=99 use=1
conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.
garbage line
"""


def test_listing_gives_original_tuples_of_the_zone() -> None:
    tcp, icmp = parse_entries(LISTING, 21)
    assert (tcp.protocol, str(tcp.src), str(tcp.dst), tcp.sport, tcp.dport) == (
        6, "10.0.0.1", "10.0.0.2", 40000, 5432,
    )  # fmt: skip
    assert (icmp.protocol, icmp.icmp_type, icmp.icmp_code, icmp.dport) == (1, 8, 0, None)
    assert delete_argv(tcp)[-4:] == ["--sport", "40000", "--dport", "5432"]
    assert "-w" in delete_argv(icmp)
    assert "--sport" not in delete_argv(icmp)
    assert [e.zone for e in parse_entries(LISTING, 99)] == [99]


def _program() -> tuple[Port, ...]:
    return (
        Port(
            id="a",
            device="veth-a.1",
            network="net-one",
            zone=5,
            mac="02:00:00:00:00:01",
            fixed_ips=(ip("10.0.0.1"), ip("fd00::1")),
            allowed_address_pairs=(AddressPair(ipaddress.ip_network("10.0.0.0/29")),),
            groups=("default", "web"),
        ),
        Port(
            id="b",
            device="vb",
            network="net-one",
            zone=5,
            mac="02:00:00:00:00:02",
            port_security=False,
        ),
    )


def test_rendered_tables() -> None:
    web = SecurityGroup(
        id="web",
        rules=(
            Rule(id="h", direction="ingress", protocol=6, port_range_min=80, port_range_max=81),
            Rule(id="p", direction="ingress", protocol=1, icmp_type=8, icmp_code=0),
        ),
    )
    program = compile_program(_program(), [default_group(), web])
    text = render_network(program, Binding("net-one", "br1", None), {"veth-a.1": 7})
    name = table_name("net-one")
    assert name == "fesg_net_one"
    # replace-whole-table idiom: create (no-op if present), delete, recreate, in one file
    assert text.startswith(f"table bridge {name} {{}}\ndelete table bridge {name}\n")
    assert 'iifname "br1" ct zone set 5' in text
    assert 'oifname "br1" ct zone set 5' in text
    # the pair overlaps the fixed address: collapsed, else nft refuses overlapping intervals
    assert "02:00:00:00:00:01 . 10.0.0.0/29" in text
    assert "02:00:00:00:00:01 . 10.0.0.1/32" not in text
    assert "meta nfproto ipv4 meta l4proto 6 th dport 80-81 accept" in text
    assert "icmp type 8 icmp code 0 accept" in text
    assert "ip saddr @rg_default_5_4 accept" in text
    assert "set rg_default_5_4" in text
    assert "10.0.0.0/29" in text
    # the unfiltered port has no chain and no tag
    assert '"vb"' not in text
    assert '"veth-a.1" : 0x00000007' in text


def test_an_empty_network_just_loses_its_tables() -> None:
    program = compile_program([], [])
    text = render_network(program, Binding("net-one", "br1", None), {})
    assert text == render_removal("net-one")
    assert "chain" not in text
