"""Classified services (``Service.match``): the pipeline's verdicts by inner protocol,
destination port, source prefix and source port (offload, drop, pass, duplicate, and the
encapsulated forward and duplicate), several services on one service IP in their priority
order, the catalog's sharing rule, and the per-packet match against ipaddress (Hypothesis)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.tof.test_pipeline import (
    APP,
    APP2,
    ENB1,
    MAC_ENB,
    MAC_SGW,
    SGW1,
    SVC_IP,
    UE1,
    UE2,
    assert_checksums,
    gpdu,
    pipeline,
    udp_packet,
)

from fluidedge.codec.gtpu import UnknownExtension
from fluidedge.codec.gtpu.header import decode_header
from fluidedge.codec.stack import classify, encapsulate_gpdu, ethernet_frame
from fluidedge.core.store import Store
from fluidedge.tof.catalog import ServiceCatalog
from fluidedge.tof.errors import ServiceConflict, ServiceNotFound
from fluidedge.tof.models import (
    DROP,
    DUPLICATE,
    DUPLICATE_ENCAPSULATED,
    FORWARD_ENCAPSULATED,
    PASS,
    Match,
    Service,
)
from fluidedge.tof.pipeline import APPS, ENB, SGW, Pipeline

TCP, UDP = 6, 17
HTTP = Service("mec-web", "198.18.50.1", "198.19.0.10", match=Match((UDP,), ((80, 80),), 5))
TLS = Service("mec-tls", "198.18.50.1", "198.19.0.11", match=Match((UDP,), ((443, 443),), 5))
BLOCK = Service(
    "mec-block", "198.18.50.1", "198.18.50.1", match=Match((UDP,), ((23, 25),)), action=DROP
)
COPY = Service(
    "mec-copy", "198.18.50.1", "198.19.0.11", match=Match((UDP,), ((9000, 9000),)), action=DUPLICATE
)


def up(dport: int, sport: int = 40000) -> bytes:
    return gpdu(ENB1, SGW1, 0x100, udp_packet(UE1, SVC_IP, sport, dport, b"GET"))


def ready() -> Pipeline:
    p = pipeline(pinger_interval=0.5)
    p.set_services({s.name: s for s in (HTTP, TLS, BLOCK, COPY)})
    return p


def test_each_port_goes_to_its_own_app_and_other_ports_to_the_core() -> None:
    p = ready()
    for dport, app in ((80, APP), (443, APP2)):
        out = p.from_s1(up(dport), ENB, 1.0)
        offloaded = [pkt for port, pkt in out if port == APPS]
        assert len(offloaded) == 1
        assert offloaded[0][16:20] == app  # NATed to that port's app
        assert_checksums(offloaded[0])
    other = up(8080)
    assert p.from_s1(other, ENB, 1.0) == [(SGW, other)]  # unmatched: on to the core, same bytes
    assert p.counters["classified_unmatched"] == 1
    assert p.service_counters["mec-web"].up_packets == 1
    assert p.service_counters["mec-tls"].up_packets == 1


def test_a_classified_offload_keeps_its_flow_for_the_apps_reply() -> None:
    p = ready()
    p.from_s1(up(80), ENB, 1.0)
    reply = udp_packet(APP, UE1, 80, 40000, b"OK")
    assert p._flow_current(next(iter(p.flows.values())))
    # No downlink TEID yet: the reply is queued (not dropped as a stale or unknown flow).
    p.from_apps(reply, 1.1)
    assert p.counters["queued_waiting_downlink_teid"] == 1
    assert "apps_stale_flow" not in p.drops


def test_drop_swallows_the_matching_packets_only() -> None:
    p = ready()
    for dport in (23, 24, 25):
        assert p.from_s1(up(dport), ENB, 1.0) == []
    assert p.drops["classified_drop"] == 3
    assert p.service_counters["mec-block"].up_packets == 3
    assert p.from_s1(up(26), ENB, 1.0)[0][0] == SGW


def test_duplicate_sends_the_original_on_and_a_copy_to_the_app_whose_answer_is_dropped() -> None:
    p = ready()
    frame = up(9000)
    out = p.from_s1(frame, ENB, 1.0)
    assert out[0] == (SGW, frame)  # the original, unchanged
    copies = [pkt for port, pkt in out if port == APPS]
    assert len(copies) == 1
    assert copies[0][16:20] == APP2
    assert_checksums(copies[0])
    assert p.flows == {}  # no NAT state: the app cannot answer the UE
    assert p.from_apps(udp_packet(APP2, UE1, 9000, 40000, b"no"), 1.1) == []
    assert p.drops["apps_no_flow"] == 1


def test_priority_orders_overlapping_rules_and_pass_makes_an_exception() -> None:
    p = pipeline()
    wide = Service("b-all", "198.18.50.1", "198.19.0.10", match=Match((), (), 10))
    ssh = Service(
        "a-ssh", "198.18.50.1", "198.18.50.1", match=Match((TCP, UDP), ((22, 22),), 1), action=PASS
    )
    p.set_services({"b-all": wide, "a-ssh": ssh})
    assert [r.name for r in p.classified[SVC_IP]] == ["a-ssh", "b-all"]
    frame = up(22)
    assert p.from_s1(frame, ENB, 1.0) == [(SGW, frame)]
    assert p.counters["classified_passed"] == 1
    assert next(port for port, _ in p.from_s1(up(53), ENB, 1.0)) == APPS


def test_source_filters_take_only_those_ues_and_source_ports() -> None:
    """``sources`` are prefixes of the uplink's inner source (the UE), ``source_ports`` its
    ports: UE1 from ports 5000-5100 goes to the app; its other ports, and UE2 (not in the
    sources) from a matching port, go on to the core."""
    p = pipeline()
    some = Service(
        "mec-some",
        "198.18.50.1",
        "198.19.0.10",
        match=Match((UDP,), (), 0, ("198.18.100.1/32", "10.45.0.0/16"), ((5000, 5100),)),
    )
    p.set_services({"mec-some": some})
    taken = [pkt for port, pkt in p.from_s1(up(53, sport=5050), ENB, 1.0) if port == APPS]
    assert len(taken) == 1
    assert taken[0][16:20] == APP
    for frame in (up(53, sport=4999), up(53, sport=5101)):
        assert p.from_s1(frame, ENB, 1.0) == [(SGW, frame)]
    other = gpdu(ENB1, SGW1, 0x300, udp_packet(UE2, SVC_IP, 5050, 53, b"q"))
    assert p.from_s1(other, ENB, 1.0) == [(SGW, other)]
    assert p.counters["classified_unmatched"] == 3


@pytest.mark.parametrize("action", [FORWARD_ENCAPSULATED, DUPLICATE_ENCAPSULATED])
def test_encapsulated_actions_hand_the_app_the_tunnels_packet(action: str) -> None:
    """The GTP-U header and T-PDU as they came (TEID, sequence, an extension the TOF could not
    terminate), in UDP from the UE to the app's port 2152; to the core only for the copy."""
    p = pipeline()
    rule = Service("mec-enc", "198.18.50.1", "198.19.0.10", match=Match((UDP,)), action=action)
    p.set_services({"mec-enc": rule})
    inner = udp_packet(UE1, SVC_IP, 4000, 53, b"query")
    outer = encapsulate_gpdu(ENB1, SGW1, 0x33, inner, sequence=7,
                             extensions=(UnknownExtension(0x8F, b"\x00\x00"),),
                             udp_checksum=False)  # fmt: skip
    frame = ethernet_frame(MAC_SGW, MAC_ENB, outer)
    out = p.from_s1(frame, ENB, 1.0)
    to_app = [pkt for port, pkt in out if port == APPS]
    to_core = [pkt for port, pkt in out if port == SGW]
    assert to_core == ([frame] if action == DUPLICATE_ENCAPSULATED else [])
    assert len(to_app) == 1
    packet = to_app[0]
    assert (packet[9], packet[12:16], packet[16:20]) == (UDP, UE1, APP)
    assert int.from_bytes(packet[22:24], "big") == 2152  # to the app's GTP-U port
    assert_checksums(packet)
    c = classify(frame)
    assert packet[28:] == frame[c.udp_offset + 8 : c.inner_end]  # the GTP-U message unchanged
    header = decode_header(packet[28:])
    assert (header.teid, header.sequence, header.extensions[0].ext_type) == (0x33, 7, 0x8F)
    assert p.counters["classified_encapsulated"] == 1
    assert p.service_counters["mec-enc"].up_packets == 1
    assert p.flows == {}  # nothing comes back through the TOF
    assert p.from_apps(udp_packet(APP, UE1, 53, 4000, b"no"), 1.1) == []


def test_removing_a_classified_service_drops_its_flows() -> None:
    p = ready()
    p.from_s1(up(80), ENB, 1.0)
    assert len(p.flows) == 1
    changed = p.set_services({s.name: s for s in (TLS, BLOCK, COPY)})
    assert changed == {"mec-web"}
    assert p.flows == {}
    assert p.from_s1(up(80), ENB, 2.0)[0][0] == SGW


def test_match_checks_its_values() -> None:
    assert Match((TCP,), ((80, 81),)).matches(TCP, 81)
    assert not Match((TCP,), ((80, 81),)).matches(UDP, 80)
    assert not Match((), ((80, 81),)).matches(1, None)  # ICMP has no port
    assert Match().matches(1, None)
    for bad in (
        {"ports": ((90, 80),)},
        {"protocols": (256,)},
        {"protocols": (1,), "ports": ((1, 2),)},
    ):
        with pytest.raises(ValueError, match=r"protocol|port"):
            Match(**bad)
    with pytest.raises(ValueError, match="needs a match"):
        Service("x", "198.18.50.1", "198.19.0.10", action=DROP)
    ue = bytes([10, 45, 3, 4])
    near = Match((), (), 0, ("10.45.0.0/16",), ((1000, 2000),))
    assert near.matches(UDP, 53, ue, 1000)
    assert not near.matches(UDP, 53, bytes([10, 46, 3, 4]), 1000)
    assert not near.matches(UDP, 53, ue, 999)
    assert not near.matches(1, None, ue, None)  # ICMP: no source port
    assert not near.matches(UDP, 53, bytes(16), 1000)  # another family never matches
    assert Match.from_api(near.to_api()) == near
    assert Match(sources=("10.45.0.1",)).sources == ("10.45.0.1/32",)  # canonical
    for sources, reason in (
        (("10.45.0.1/16",), "host bits"),
        (("ue",), "not an address"),
        (("10.0.0.0/8", "2001:db8::/32"), "IPv4 or all IPv6"),
    ):
        with pytest.raises(ValueError, match=reason):
            Match(sources=sources)
    with pytest.raises(ValueError, match="protocols that have them"):
        Match((1,), source_ports=((1, 2),))
    with pytest.raises(ValueError, match="same IP version"):
        Service("x", "198.18.50.1", "198.19.0.10", match=Match(sources=("2001:db8::/32",)))


def test_the_catalog_lets_classified_services_share_an_address_and_keeps_them(
    tmp_path: Path,
) -> None:
    applied: list[dict[str, Service]] = []
    catalog = ServiceCatalog(Store(tmp_path / "db.sqlite"), lambda s: applied.append(dict(s)))
    catalog.add(HTTP)
    catalog.add(TLS)
    near = Match((UDP,), (), 7, ("10.45.0.0/16",), ((5000, 5100),))
    catalog.add(Service("mec-near", "198.18.50.1", "198.19.0.13", match=near))
    with pytest.raises(ServiceConflict):
        catalog.add(Service("plain", "198.18.50.1", "198.19.0.12"))
    catalog.add(Service("plain", "198.18.50.2", "198.19.0.12"))
    with pytest.raises(ServiceConflict):
        catalog.add(Service("mec-x", "198.18.50.2", "198.19.0.12", match=Match()))
    again = ServiceCatalog(Store(tmp_path / "db.sqlite"), lambda s: None)
    assert again.snapshot() == catalog.snapshot()
    assert again.snapshot()["mec-tls"].match == Match((UDP,), ((443, 443),), 5)
    assert again.snapshot()["mec-near"].match == near  # sources and source ports kept
    assert applied[-1]["mec-web"].to_api()["match"] == {
        "protocols": [17],
        "ports": [[80, 80]],
        "priority": 5,
    }


def test_the_catalog_finds_a_shared_address_by_name_only(tmp_path: Path) -> None:
    catalog = ServiceCatalog(Store(tmp_path / "db.sqlite"), lambda s: None)
    catalog.add(HTTP)
    catalog.add(TLS)
    catalog.add(Service("plain", "198.18.50.2", "198.19.0.12"))
    assert catalog.find("198.18.50.2").name == "plain"
    assert catalog.find("mec-tls") == TLS
    for call in (catalog.find, catalog.delete):
        with pytest.raises(ServiceConflict, match=r"'mec-tls', 'mec-web'\): name the service"):
            call("198.18.50.1")
    assert set(catalog.snapshot()) == {"mec-web", "mec-tls", "plain"}
    assert catalog.delete("mec-web") == HTTP
    assert catalog.delete("198.18.50.1") == TLS
    with pytest.raises(ServiceNotFound):
        catalog.find("198.18.50.1")


def _network(addr: int, length: int) -> str:
    return str(ipaddress.ip_network(f"{ipaddress.IPv4Address(addr)}/{length}", strict=False))


_prefix = st.builds(_network, st.integers(0, 2**32 - 1), st.integers(0, 32))
_range = st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(lambda r: (min(r), max(r)))
_port = st.none() | st.integers(0, 65535)


@given(
    st.lists(_prefix, max_size=4),
    st.lists(_range, max_size=3),
    st.lists(_range, max_size=3),
    st.tuples(st.integers(0, 2**32 - 1), _port, _port),
)
def test_match_agrees_with_ipaddress_and_plain_ranges(
    sources: list[str],
    ports: list[tuple[int, int]],
    source_ports: list[tuple[int, int]],
    packet: tuple[int, int | None, int | None],
) -> None:
    """The per-packet test (ints and masks) against the obvious one (ipaddress, ranges)."""
    address, port, source_port = packet
    match = Match((UDP,), tuple(ports), 0, tuple(sources), tuple(source_ports))
    ue = ipaddress.IPv4Address(address)

    def within(p: int | None, ranges: list[tuple[int, int]]) -> bool:
        return not ranges or (p is not None and any(lo <= p <= hi for lo, hi in ranges))

    expected = (
        (not sources or any(ue in ipaddress.ip_network(n) for n in sources))
        and within(port, ports)
        and within(source_port, source_ports)
    )
    assert match.matches(UDP, port, ue.packed, source_port) is expected
    assert not match.matches(TCP, port, ue.packed, source_port)
