"""A flow classifier naming a TOF service: validation and its resolution (pure)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from fluidedge.chains.compiler import compile_bridge
from fluidedge.chains.errors import ChainUnprocessable, InvalidChain
from fluidedge.chains.model import (
    TOF_SERVICE_PATTERN,
    ChainState,
    FlowClassifier,
    PortChain,
    PortPair,
    PortPairGroup,
)
from fluidedge.chains.tof import resolve, service_prefixes
from fluidedge.tof.models import NAME_PATTERN, NewServiceModel


def _fc(cid: str = "c", **kw: Any) -> FlowClassifier:
    base: dict[str, Any] = {
        "id": cid,
        "logical_source_port": "vtof",
        "logical_destination_port": "vapp",
        "protocol": "udp",
        "tof_service": "video",
    }
    base.update(kw)
    return FlowClassifier.from_json(base)


def _state(*classifiers: FlowClassifier) -> ChainState:
    return ChainState(
        {"fw": PortPair("fw", "vfi", "vfo")},
        {"g": PortPairGroup("g", ("fw",))},
        {c.id: c for c in classifiers},
        {"ch": PortChain("ch", 1, ("g",), tuple(c.id for c in classifiers))},
    )


def _services(**apps: str) -> dict[str, Any]:
    out = []
    for name, app in apps.items():
        service_ip = "2001:db8::50" if ":" in app else "198.18.200.50"
        body: dict[str, Any] = {"name": name, "serviceIP": service_ip}
        if "/" in app:
            body["onDemand"] = {"template": "web", "addressPool": app}
        else:
            body["applicationIP"] = app
        out.append(NewServiceModel.model_validate(body).to_service())
    return service_prefixes(out)


def test_round_trip_and_validation() -> None:
    c = _fc()
    assert c.to_json()["tof_service"] == "video"
    assert FlowClassifier.from_json(c.to_json()) == c
    assert _fc(tof_service=None).tof_service is None
    with pytest.raises(InvalidChain, match="tof_service"):
        _fc(tof_service="-bad")
    with pytest.raises(ChainUnprocessable, match=r"destination_ip_prefix.*TOF service"):
        _fc(destination_ip_prefix="198.19.0.10")


def test_resolve_fills_the_destination_of_the_services_offloaded_packets() -> None:
    services = _services(video="198.19.0.10", pool="198.19.0.64/26")
    state = _state(_fc(), _fc("d", tof_service="pool", destination_port_range_min=7))
    got = resolve(state, services)
    assert got.classifiers["c"].destination_ip_prefix == ipaddress.ip_network("198.19.0.10/32")
    assert got.classifiers["c"].tof_service is None
    assert got.classifiers["d"].destination_ip_prefix == ipaddress.ip_network("198.19.0.64/26")
    assert got.chains["ch"].flow_classifiers == ("c", "d")
    flows = compile_bridge(got, {"vtof": 1, "vapp": 2, "vfi": 3, "vfo": 4})["ch"].flows
    steer = [f.match for f in flows if f.table == 0 and f.match.startswith("in_port=1,")]
    assert "in_port=1,udp,nw_dst=198.19.0.10" in steer
    assert "in_port=1,udp,nw_dst=198.19.0.64/26,tp_dst=7" in steer
    # replies: from the app, the reversed match
    assert any(f.match == "in_port=2,udp,nw_src=198.19.0.10" for f in flows)


def test_missing_or_other_family_service_takes_no_traffic() -> None:
    state = _state(_fc(), _fc("d", tof_service="v6", ethertype="IPv4"))
    got = resolve(state, _services(v6="2001:db8::10"))
    assert got.chains["ch"].flow_classifiers == ()
    assert set(got.classifiers) == set()
    flows = compile_bridge(got, {"vtof": 1, "vapp": 2, "vfi": 3, "vfo": 4})["ch"].flows
    assert not [f for f in flows if f.table == 0 and f.priority == 300]
    # a service appearing later makes it concrete
    again = resolve(state, _services(video="198.19.0.11"))
    assert again.chains["ch"].flow_classifiers == ("c",)


def test_state_without_tof_classifiers_is_unchanged() -> None:
    state = _state(_fc(tof_service=None, destination_ip_prefix="198.19.0.10"))
    assert resolve(state, {}) is state


def test_the_service_name_pattern_is_the_tofs() -> None:
    """Restated in chains (tof and chains are peer layers): it must not drift."""
    assert TOF_SERVICE_PATTERN == NAME_PATTERN
