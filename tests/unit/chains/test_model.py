"""Chain model: construction-time validation, JSON round trips, cross-object checks (pure)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from fluidedge.chains.errors import (
    ChainConflict,
    ChainObjectNotFound,
    ChainUnprocessable,
    InvalidChain,
)
from fluidedge.chains.model import (
    ChainState,
    FlowClassifier,
    PortChain,
    PortPair,
    PortPairGroup,
    check_state,
    free_chain_id,
    parse_protocol,
)
from fluidedge.errors import ConflictError, InputError, NotFoundError, Unprocessable


def _fc(**kw: Any) -> FlowClassifier:
    base: dict[str, Any] = {
        "id": "c",
        "logical_source_port": "va",
        "logical_destination_port": "vb",
    }
    base.update(kw)
    return FlowClassifier.from_json(base)


def test_errors_are_the_api_kinds() -> None:
    assert issubclass(InvalidChain, InputError)
    assert InvalidChain.http_status == 400
    assert issubclass(ChainUnprocessable, Unprocessable)
    assert not issubclass(ChainUnprocessable, InvalidChain)
    assert ChainUnprocessable.http_status == 422
    assert issubclass(ChainConflict, ConflictError)
    assert issubclass(ChainObjectNotFound, NotFoundError)


@pytest.mark.parametrize(
    ("value", "ethertype", "number"),
    [("tcp", "IPv4", 6), ("UDP", "IPv4", 17), ("icmp", "IPv6", 58), ("47", "IPv4", 47),
     (132, "IPv4", 132), ("any", "IPv6", None), (None, "IPv4", None)],
)  # fmt: skip
def test_protocols(value: object, ethertype: Any, number: int | None) -> None:
    assert parse_protocol(value, ethertype) == number


@pytest.mark.parametrize("value", ["gre2", 256, -1, True, "1000", 1.5])
def test_bad_protocols(value: object) -> None:
    with pytest.raises(InvalidChain, match="protocol"):
        parse_protocol(value, "IPv4")


def test_classifier_round_trip_and_normalisation() -> None:
    c = _fc(
        ethertype="IPv6",
        protocol="udp",
        source_ip_prefix="fd00::1/64",
        destination_ip_prefix="fd01::5",
        destination_port_range_min=5000,
    )
    assert c.source_ip_prefix == ipaddress.ip_network("fd00::/64")  # host bits cleared
    assert c.destination_ip_prefix == ipaddress.ip_network("fd01::5/128")
    assert c.destination_port_range_max == 5000  # a single port
    assert c.ranges() == (None, (5000, 5000))
    assert FlowClassifier.from_json(c.to_json()) == c


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"ethertype": "IPv5"}, "ethertype"),
        ({"source_ip_prefix": "10.0.0.0/33"}, "source_ip_prefix"),
        ({"source_ip_prefix": ""}, "source_ip_prefix"),
        ({"protocol": "tcp", "destination_port_range_min": 70000}, "destination_port_range_min"),
        ({"logical_source_port": "bad name"}, "logical_source_port"),
        ({"logical_destination_port": ""}, "logical_destination_port"),
        ({"id": "Bad"}, "flow classifier id"),
        ({"l7_parameters": {}}, "unknown field"),
        ({"tenant": "x" * 40}, "tenant"),
    ],
)
def test_bad_classifiers(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidChain, match=reason):
        _fc(**fields)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"ethertype": "IPv6", "source_ip_prefix": "10.0.0.0/8"}, "not an IPv6 prefix"),
        ({"destination_ip_prefix": "fd00::/8"}, "not an IPv4 prefix"),
        ({"protocol": "icmp", "destination_port_range_min": 80}, "needs protocol tcp"),
        ({"destination_port_range_min": 80}, "needs protocol tcp"),
        ({"protocol": "tcp", "source_port_range_min": 90, "source_port_range_max": 80}, "above"),
        ({"protocol": "tcp", "source_port_range_max": 80}, "without"),
        ({"protocol": "icmpv6"}, "IPv6 protocol"),
        ({"logical_destination_port": "va"}, "is the logical source port"),
        ({"tof_service": "video", "destination_ip_prefix": "10.0.0.1"}, "TOF service"),
    ],
)
def test_fields_that_contradict_each_other_are_unprocessable(
    fields: dict[str, Any], reason: str
) -> None:
    """Each field well-formed (the API's schema holds), together impossible: a 422, never the
    400 of a malformed field (which a schema-valid body must not get)."""
    with pytest.raises(ChainUnprocessable, match=reason):
        _fc(**fields)


def test_pairs_groups_chains() -> None:
    one = PortPair.from_json({"id": "fw1", "ingress": "veth1"})
    assert one.one_armed
    assert one.ports() == ("veth1",)
    two = PortPair("fw2", "veth2", "veth3")
    assert two.ports() == ("veth2", "veth3")
    assert PortPair.from_json(two.to_json()) == two
    g = PortPairGroup.from_json({"id": "fw", "port_pairs": ["fw1", "fw2"]})
    assert PortPairGroup.from_json(g.to_json()) == g
    ch = PortChain.from_json({"id": "web", "port_pair_groups": ["fw"]}, chain_id=3)
    assert ch.symmetric
    assert ch.failure_policy == "closed"
    assert ch.chain_id == 3
    assert PortChain.from_json(ch.to_json()) == ch


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: PortPair("p", "a;rm", "b"), "ingress"),
        (lambda: PortPair("p", "a", "b" * 16), "egress"),
        (lambda: PortPairGroup("g", ("a", "a")), "appears twice"),
        (lambda: PortPairGroup("g", ["a"]), "list of names"),  # type: ignore[arg-type]
        (lambda: PortChain("c", 1, ()), "at least one group"),
        (lambda: PortChain("c", 0, ("g",)), "chain_id"),
        (lambda: PortChain("c", 256, ("g",)), "chain_id"),
        (lambda: PortChain("c", 1, ("g",), failure_policy="maybe"), "failure_policy"),  # type: ignore[arg-type]
        (lambda: PortChain("c", 1, ("g",), symmetric=1), "symmetric"),  # type: ignore[arg-type]
        (lambda: PortChain.from_json({"id": "c", "port_pair_groups": "g"}, 1), "must be a list"),
    ],
)
def test_bad_objects(build: Any, reason: str) -> None:
    with pytest.raises(InvalidChain, match=reason):
        build()


def _state(**kw: Any) -> ChainState:
    base: dict[str, Any] = {
        "port_pairs": {"p1": PortPair("p1", "f1i", "f1o"), "p2": PortPair("p2", "f2i", "f2o")},
        "groups": {"g": PortPairGroup("g", ("p1", "p2"))},
        "classifiers": {"c": FlowClassifier("c", "va", "vb")},
        "chains": {"ch": PortChain("ch", 1, ("g",), ("c",))},
    }
    base.update(kw)
    return ChainState(**base)


def test_a_consistent_state_passes() -> None:
    check_state(_state())


@pytest.mark.parametrize(
    ("change", "error", "reason"),
    [
        ({"groups": {"g": PortPairGroup("g", ("p1", "p9"))}}, ChainObjectNotFound, "p9"),
        ({"chains": {"ch": PortChain("ch", 1, ("h",), ("c",))}}, ChainObjectNotFound, "'h'"),
        ({"chains": {"ch": PortChain("ch", 1, ("g",), ("d",))}}, ChainObjectNotFound, "'d'"),
        (
            {"groups": {"g": PortPairGroup("g", ("p1",)), "h": PortPairGroup("h", ("p1",))}},
            ChainConflict,
            "port pair 'p1'",
        ),
        (
            {
                "groups": {"g": PortPairGroup("g", ("p1",)), "h": PortPairGroup("h", ("p2",))},
                "chains": {
                    "ch": PortChain("ch", 1, ("g",), ("c",)),
                    "ci": PortChain("ci", 2, ("g", "h")),
                },
            },
            ChainConflict,
            "port pair group 'g'",
        ),
        (
            {
                "groups": {"g": PortPairGroup("g", ("p1",)), "h": PortPairGroup("h", ("p2",))},
                "chains": {
                    "ch": PortChain("ch", 1, ("g",), ("c",)),
                    "ci": PortChain("ci", 1, ("h",)),
                },
            },
            ChainConflict,
            "chain_id",
        ),
        (
            {"port_pairs": {"p1": PortPair("p1", "f1i", "f1o"), "p2": PortPair("p2", "f1o", "x")}},
            ChainConflict,
            "port 'f1o'",
        ),
        ({"classifiers": {"c": FlowClassifier("c", "f1i", "vb")}}, ChainConflict, "belongs to"),
        (
            {"chains": {"ch": PortChain("ch", 1, ("g",), ("c",), tenant="other")}},
            ChainObjectNotFound,
            "no port pair group 'g'",
        ),
        ({"chains": {"x": PortChain("ch", 1, ("g",), ("c",))}}, InvalidChain, "stored under"),
    ],
)
def test_inconsistent_states(change: dict[str, Any], error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        check_state(_state(**change))


def test_free_chain_id() -> None:
    assert free_chain_id([]) == 1
    chains = [PortChain(f"c{i}", i, ("g",)) for i in (1, 2, 4)]
    assert free_chain_id(chains) == 3
    full = [PortChain(f"c{i}", i, ("g",)) for i in range(1, 256)]
    with pytest.raises(ChainConflict, match="in use"):
        free_chain_id(full)
