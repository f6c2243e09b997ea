"""Security-group model: construction-time validation and JSON round trips (pure)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from fluidedge.errors import InputError
from fluidedge.secgroups.errors import InvalidSecgroup, SecgroupUnprocessable
from fluidedge.secgroups.model import (
    AddressPair,
    Port,
    Rule,
    SecurityGroup,
    default_group,
    parse_mac,
    parse_protocol,
)


def _port(**kw: Any) -> Port:
    base: dict[str, Any] = {
        "id": "p1",
        "device": "veth1",
        "network": "net",
        "zone": 7,
        "mac": "02:00:00:00:00:01",
        "fixed_ips": (ipaddress.ip_address("10.0.0.1"),),
        "groups": ("web",),
    }
    base.update(kw)
    return Port(**base)


@pytest.mark.parametrize(
    ("value", "ethertype", "number"),
    [
        ("tcp", "IPv4", 6),
        ("UDP", "IPv4", 17),
        ("icmp", "IPv4", 1),
        ("icmp", "IPv6", 58),
        ("icmpv6", "IPv6", 58),
        ("132", "IPv4", 132),
        (47, "IPv4", 47),
        ("any", "IPv4", None),
        (None, "IPv6", None),
    ],
)
def test_protocols_parse_to_numbers(value: object, ethertype: Any, number: int | None) -> None:
    assert parse_protocol(value, ethertype) == number


@pytest.mark.parametrize("value", ["tcpp", 256, -1, True, "1000", 1.5])
def test_bad_protocols_are_refused_with_a_reason(value: object) -> None:
    with pytest.raises(InvalidSecgroup, match="protocol"):
        parse_protocol(value)


def test_errors_are_input_errors() -> None:
    assert issubclass(InvalidSecgroup, InputError)


@pytest.mark.parametrize(
    ("kw", "field", "status"),
    [
        ({"direction": "in"}, "direction", 400),
        ({"ethertype": "IPv5"}, "ethertype", 400),
        # two fields that contradict each other: each is fine alone (422)
        ({"protocol": 1, "port_range_min": 22}, "port_range_min", 422),
        ({"protocol": None, "port_range_min": 22}, "port_range_min", 422),
        ({"protocol": 6, "port_range_max": 22}, "port_range_min", 422),
        ({"protocol": 6, "port_range_min": 30, "port_range_max": 20}, "port_range_min", 422),
        ({"protocol": 6, "port_range_min": 0}, "port_range_min", 400),
        ({"protocol": 6, "port_range_min": 70000}, "port_range_min", 400),
        ({"protocol": 6, "icmp_type": 8}, "icmp_type", 422),
        ({"protocol": 1, "icmp_code": 0}, "icmp_code", 422),
        ({"protocol": 1, "icmp_type": 256}, "icmp_type", 400),
        ({"protocol": 58}, "protocol", 422),
        ({"remote_ip_prefix": ipaddress.ip_network("fd00::/64")}, "remote_ip_prefix", 422),
        (
            {"remote_ip_prefix": ipaddress.ip_network("10.0.0.0/8"), "remote_group": "a"},
            "remote_ip_prefix",
            422,
        ),
        ({"remote_group": "Bad_Name"}, "remote_group", 400),
        ({"id": ""}, "rule id", 400),
        ({"description": "x" * 5000}, "description", 400),
    ],
)
def test_bad_rules_name_the_field(kw: dict[str, Any], field: str, status: int) -> None:
    base: dict[str, Any] = {"id": "r1", "direction": "ingress"}
    base.update(kw)
    with pytest.raises(InvalidSecgroup, match=field) as caught:
        Rule(**base)
    assert caught.value.http_status == status
    assert isinstance(caught.value, SecgroupUnprocessable) == (status == 422)


def test_rule_normalisation() -> None:
    r = Rule(id="r", direction="ingress", ethertype="IPv6", protocol=1, icmp_type=128)
    assert r.protocol == 58
    single = Rule(id="r", direction="egress", protocol=6, port_range_min=80)
    assert single.port_range_max == 80
    loose = Rule.from_json(
        {"id": "r", "direction": "ingress", "remote_ip_prefix": "10.1.2.3/8", "protocol": "tcp"}
    )
    assert str(loose.remote_ip_prefix) == "10.0.0.0/8"
    assert loose.protocol == 6


def test_rule_json_round_trip() -> None:
    rule = Rule(
        id="r-1",
        direction="egress",
        ethertype="IPv6",
        protocol=17,
        port_range_min=53,
        port_range_max=54,
        remote_ip_prefix=ipaddress.ip_network("fd00::/8"),
        description="dns",
    )
    assert Rule.from_json(rule.to_json()) == rule


def test_from_json_refuses_unknown_fields() -> None:
    with pytest.raises(InvalidSecgroup, match="colour"):
        Rule.from_json({"id": "r", "direction": "ingress", "colour": "red"})
    with pytest.raises(InvalidSecgroup, match="rulez"):
        SecurityGroup.from_json({"id": "g", "rulez": []})


def test_group_refuses_duplicate_ids_and_duplicate_rules() -> None:
    a = Rule(id="a", direction="ingress", protocol=6, port_range_min=22)
    with pytest.raises(SecgroupUnprocessable, match="twice"):
        SecurityGroup(id="g", rules=(a, a))
    same = Rule(id="b", direction="ingress", protocol=6, port_range_min=22, port_range_max=22)
    with pytest.raises(SecgroupUnprocessable, match="duplicates"):
        SecurityGroup(id="g", rules=(a, same))
    with pytest.raises(InvalidSecgroup, match="security group id"):
        SecurityGroup(id="G")


def test_group_json_round_trip_and_default_group() -> None:
    group = default_group("acme")
    assert SecurityGroup.from_json(group.to_json()) == group
    ingress = [r for r in group.rules if r.direction == "ingress"]
    egress = [r for r in group.rules if r.direction == "egress"]
    assert {r.ethertype for r in ingress} == {"IPv4", "IPv6"}
    assert all(r.remote_group == "default" for r in ingress)
    assert all(r.remote_group is None and r.remote_ip_prefix is None for r in egress)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("02:00:00:00:00:01", "02:00:00:00:00:01"),
        ("02-AA-00-00-00-01", "02:aa:00:00:00:01"),
        ("01:00:5e:00:00:01", None),
        ("00:00:00:00:00:00", None),
        ("02:00:00:00:00", None),
        (5, None),
    ],
)
def test_macs(value: object, ok: str | None) -> None:
    if ok is None:
        with pytest.raises(InvalidSecgroup, match="mac"):
            parse_mac("mac", value)
    else:
        assert parse_mac("mac", value) == ok


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"zone": 0}, "zone"),
        ({"zone": 70000}, "zone"),
        ({"device": "a" * 16}, "device"),
        ({"groups": ("web", "web")}, "groups"),
        ({"port_security": False}, "port_security"),
        (
            {
                "groups": (),
                "port_security": False,
                "allowed_address_pairs": (AddressPair(ipaddress.ip_network("10.9.0.0/24")),),
            },
            "port_security",
        ),
        ({"fixed_ips": ("10.0.0.1",)}, "fixed_ips"),
        ({"mac": "ff:ff:ff:ff:ff:ff"}, "mac"),
        ({"port_security": "yes"}, "port_security"),
    ],
)
def test_bad_ports_name_the_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSecgroup, match=field):
        _port(**kw)


def test_port_json_round_trip() -> None:
    port = _port(
        allowed_address_pairs=(
            AddressPair(ipaddress.ip_network("10.0.9.0/24"), "02:00:00:00:00:09"),
            AddressPair(ipaddress.ip_network("fd00::5/128")),
        )
    )
    assert Port.from_json(port.to_json()) == port
    assert port.addresses() == (
        ipaddress.ip_network("10.0.0.1/32"),
        ipaddress.ip_network("10.0.9.0/24"),
        ipaddress.ip_network("fd00::5/128"),
    )


def test_groups_on_a_port_without_port_security_contradict_it() -> None:
    """Each field is fine alone; together they cannot be carried out (422)."""
    with pytest.raises(SecgroupUnprocessable, match="port_security") as caught:
        _port(port_security=False)
    assert caught.value.http_status == 422
