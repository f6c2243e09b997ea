"""The PDN's DNS server, pure: the zone the lab config makes, and answers cross-checked by
parsing them with dnspython."""

from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from fluidedge.lab.config import default_text, dns_zone, load, loads
from fluidedge.lab.dns import Zone, respond
from fluidedge.lab.errors import LabConfigError
from fluidedge.lab.topology import Topology

ZONE = Zone.of(
    {"pdn.example": ["198.18.200.10", "2001:db8:200::a"], "v4.example": ["198.18.200.77"]}, 30
)


def _ask(name: str, rdtype: str = "A", zone: Zone = ZONE) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    outcome, wire = respond(query.to_wire(), zone)
    assert wire is not None, outcome
    answer = dns.message.from_wire(wire)
    assert answer.id == query.id
    assert answer.flags & dns.flags.QR
    return answer


def _addresses(answer: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in answer.answer for r in rrset)


def test_a_name_of_the_zone_gets_its_records_authoritatively() -> None:
    a = _ask("pdn.example")
    assert a.rcode() == dns.rcode.NOERROR
    assert a.flags & dns.flags.AA
    assert _addresses(a) == ["198.18.200.10"]
    assert a.answer[0].ttl == 30
    assert _addresses(_ask("PDN.Example.", "AAAA")) == ["2001:db8:200::a"]
    assert _addresses(_ask("pdn.example", "ANY")) == ["198.18.200.10", "2001:db8:200::a"]


def test_other_types_are_nodata_and_other_names_nxdomain() -> None:
    mx = _ask("pdn.example", "MX")
    assert (mx.rcode(), mx.answer) == (dns.rcode.NOERROR, [])
    assert respond(dns.message.make_query("v4.example", "AAAA").to_wire(), ZONE)[0] == "nodata"
    other = _ask("elsewhere.example")
    assert other.rcode() == dns.rcode.NXDOMAIN
    assert other.flags & dns.flags.AA
    assert other.answer == []
    assert respond(dns.message.make_query("x.pdn.example", "A").to_wire(), ZONE)[0] == "nxdomain"


def test_classes_opcodes_and_question_counts_get_error_codes() -> None:
    chaos = dns.message.make_query("version.bind", "TXT", "CH")
    assert respond(chaos.to_wire(), ZONE)[0] == "refused"
    notify = dns.message.make_query("pdn.example", "A")
    notify.set_opcode(dns.opcode.NOTIFY)
    outcome, wire = respond(notify.to_wire(), ZONE)
    assert outcome == "notimp"
    assert wire is not None
    assert dns.message.from_wire(wire).rcode() == dns.rcode.NOTIMP
    empty = dns.message.Message()
    outcome, wire = respond(empty.to_wire(), ZONE)
    assert outcome == "formerr"
    assert wire is not None
    assert dns.message.from_wire(wire).rcode() == dns.rcode.FORMERR


def test_edns_queries_get_edns_answers() -> None:
    query = dns.message.make_query("pdn.example", "A", use_edns=0, payload=1232)
    wire = respond(query.to_wire(), ZONE)[1]
    assert wire is not None
    answer = dns.message.from_wire(wire)
    assert answer.edns == 0
    assert _addresses(answer) == ["198.18.200.10"]


def test_garbage_and_responses_are_dropped_never_raised() -> None:
    query = dns.message.make_query("pdn.example", "A").to_wire()
    response = respond(query, ZONE)[1]
    assert response is not None
    assert respond(response, ZONE) == ("dropped", None)  # never answer an answer
    assert respond(b"", ZONE) == ("dropped", None)
    assert respond(b"\x00" * 5, ZONE) == ("dropped", None)
    rng = random.Random(16)
    outcomes = set()
    for _ in range(3000):
        data = bytearray(query)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = bytes(data[: rng.randint(0, len(data))]) if rng.random() < 0.3 else bytes(data)
        outcome, wire = respond(cut, ZONE)
        outcomes.add(outcome)
        if wire is not None:
            dns.message.from_wire(wire)  # whatever is sent parses
    assert "dropped" in outcomes
    assert len(outcomes) > 2


def test_the_zone_survives_its_json_and_refuses_bad_addresses() -> None:
    assert Zone.from_json(ZONE.as_json()) == ZONE
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        Zone.of({"x.example": ["nowhere"]}, 5)
    with pytest.raises(ValueError, match="zone"):
        Zone.from_json({"names": []})


def test_the_default_lab_zone_names_the_pdn_host_in_both_families() -> None:
    cfg = load()
    zone = dns_zone(cfg)
    assert zone == {
        "pdn.example": ["198.18.200.10", "2001:db8:200::a"],
        "www.pdn.example": ["198.18.200.10", "2001:db8:200::a"],
    }
    v4 = loads(default_text().replace('subnet6 = "2001:db8:100::/64"', ""))
    assert dns_zone(v4)["pdn.example"] == ["198.18.200.10"]
    topo = Topology(cfg, "t1")
    assert str(topo.pdn_dns_address6) == "2001:db8:200::35"
    assert Topology(v4, "t1").pdn_dns_address6 is None


def test_names_from_the_config_join_the_zone_normalised() -> None:
    text = default_text().replace(
        "[pdn.dns.names]",
        '[pdn.dns.names]\n"Video.Edge.Example." = ["198.18.200.10", "2001:db8::9"]',
    )
    zone = dns_zone(loads(text))
    assert zone["video.edge.example"] == ["198.18.200.10", "2001:db8::9"]


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('address = "198.18.200.53"', 'address = "198.18.200.10"', "already used"),
        ('address = "198.18.200.53"', 'address = "198.18.201.53"', "not a host address"),
        ('host_address = "198.18.200.254"', 'host_address = "198.18.200.1"', "already used"),
        ('host_names = ["pdn.example", "www.pdn.example"]', 'host_names = ["a..b"]', "DNS name"),
        ('host_names = ["pdn.example", "www.pdn.example"]', 'host_names = ["-a.b"]', "DNS name"),
        ("[pdn.dns.names]", '[pdn.dns.names]\n"pdn.example" = ["1.2.3.4"]', "given twice"),
        ("[pdn.dns.names]", '[pdn.dns.names]\n"x.example" = []', "at least 1"),
        (
            "[pdn.dns.names]",
            '[pdn.dns.names]\n"x.example" = ["1.2.3.4"]\n"X.Example." = ["1.2.3.5"]',
            "given twice",
        ),
        ("[pdn.dns.names]", '[pdn.dns.names]\n"x.example" = ["1.2.3"]', "x.example"),
        ("port = 53", "port = 0", "port"),
        ("ttl = 60", "ttl = -1", "ttl"),
    ],
)
def test_bad_dns_tables_are_refused_with_a_reason(old: str, new: str, reason: str) -> None:
    text = default_text()
    assert old in text
    with pytest.raises(LabConfigError, match=reason):
        loads(text.replace(old, new, 1))


def test_the_plan_gives_the_pdn_the_server_and_the_host_one_route_to_it() -> None:
    topo = Topology(load(), "t1")
    plan = topo.plan("/p", "/run/x")
    assert "addr add 198.18.200.53/32 dev br0" in plan.configure["t1-pdn"]
    host = plan.configure["t1-host"]
    assert "route add 198.18.200.53/32 dev pdn src 198.18.200.254" in host
    assert [line for line in host if line.startswith("route add") and "dev pdn" in line] == [
        "route add 198.18.200.53/32 dev pdn src 198.18.200.254"
    ]
    assert "addr add 2001:db8:200::35/128 dev br0 nodad" in plan.configure6["t1-pdn"]
    pdn = next(p for p in plan.processes if p.name == "pdn")
    spec = pdn.spec["dns"]
    assert isinstance(spec, dict)
    assert (spec["address"], spec["address6"], spec["port"]) == (
        "198.18.200.53", "2001:db8:200::35", 53,
    )  # fmt: skip
    assert Zone.from_json(spec["zone"]).a["www.pdn.example"] == ("198.18.200.10",)


def test_the_osmo_ggsn_gives_the_ues_the_pdns_dns_server() -> None:
    plan = Topology(load(flavour="osmo"), "t1").plan("/p", "/run/x")
    ggsn = next(
        p for p in plan.processes if p.module.endswith(".osmo") and p.spec["role"] == "ggsn"
    )
    assert ggsn.spec["dns"] == "198.18.200.53"
    assert "addr add 198.18.200.53/32 dev br0" in plan.configure["t1-pdn"]
