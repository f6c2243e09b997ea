"""The pure parts of lawful intercept: request validation, target matching, the pcap format,
and the pipeline's copies (exactly the target's offloaded packets, as the app sees them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.unit.tof.test_pipeline import APP, ENB1, SERVICE, SGW1, UE1, UE2, udp_packet
from tests.unit.tof_accounting.test_usage import bearer_up, reply, send_up

from fluidedge.tof.config import TofConfig
from fluidedge.tof.intercept.model import (
    Intercept,
    InterceptInvalid,
    InterceptRefused,
    NewInterceptModel,
    Target,
    pcap_header,
    pcap_path,
    pcap_record,
    read_pcap,
    validate,
)
from fluidedge.tof.pipeline import APPS, Pipeline

ENB2 = bytes([198, 18, 0, 12])


def request(**dest: str) -> NewInterceptModel:
    return NewInterceptModel(name="li1", target={"ue": "198.18.100.1"}, destination=dest)  # type: ignore[arg-type]


def test_target_matches_the_ue_and_optionally_one_bearer() -> None:
    anyb = Target(UE1, None, None)
    assert anyb.matches(UE1, ENB1, SGW1)
    assert anyb.matches(UE1, ENB2, SGW1)
    assert not anyb.matches(UE2, ENB1, SGW1)
    one = Target(UE1, ENB1, SGW1)
    assert one.matches(UE1, ENB1, SGW1)
    assert not one.matches(UE1, ENB2, SGW1)
    assert not one.matches(UE1, ENB1, ENB2)


def test_request_validation(tmp_path: Path) -> None:
    default = tmp_path / "intercepts"
    default.mkdir()
    other = tmp_path / "lawful"
    other.mkdir()
    it = validate(request(pcap="a.pcap"), default, [])
    assert it.pcap == str(default.resolve() / "a.pcap")
    assert validate(request(pcap=str(other / "b.pcap")), default, [other]).pcap == str(
        other.resolve() / "b.pcap"
    )
    assert validate(request(interface="mirror0"), default, []).interface == "mirror0"
    for bad in (
        {},  # no destination
        {"interface": "mirror0", "pcap": "a.pcap"},  # both
        {"pcap": "../a.pcap"},  # not a bare name
        {"pcap": "sub/a.pcap"},
        {"pcap": "a.txt"},  # not .pcap
        {"pcap": str(other / "b.pcap")},  # not an allowed directory
        {"pcap": str(default / ".." / "b.pcap")},
    ):
        with pytest.raises((InterceptInvalid, InterceptRefused, ValidationError)):
            validate(request(**bad), default, [])
    # A symbolic link out of an allowed directory is refused (compared after resolving).
    (default / "escape").symlink_to(other)
    with pytest.raises(InterceptRefused):
        pcap_path(str(default / "escape" / "c.pcap"), default, [])
    for target in ({"ue": "198.18.100.01"}, {"ue": "x"}, {"ue": "198.18.100.1", "enb": "1.2.3"}):
        with pytest.raises(ValidationError):
            NewInterceptModel(name="a", target=target, destination={"pcap": "a.pcap"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        NewInterceptModel(name="a", target={"ue": "1.2.3.4"}, destination={"interface": "a b"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        NewInterceptModel(name="../x", target={"ue": "1.2.3.4"}, destination={"pcap": "a.pcap"})  # type: ignore[arg-type]
    mixed = NewInterceptModel(
        name="a",
        target={"ue": "1.2.3.4", "enb": "10.0.0.1", "sgw": "fd00::1"},  # type: ignore[arg-type]
        destination={"pcap": "a.pcap"},  # type: ignore[arg-type]
    )
    with pytest.raises(InterceptRefused):
        validate(mixed, default, [])


def test_pcap_round_trip_with_nanoseconds_and_a_cut_record() -> None:
    data = pcap_header() + pcap_record(b"E" + b"\x00" * 19, 1_700_000_000_123_456_789)
    data += pcap_record(b"`" + b"\x01" * 39, 5)
    assert read_pcap(data) == [
        (1_700_000_000_123_456_789, b"E" + b"\x00" * 19),
        (5, b"`" + b"\x01" * 39),
    ]
    assert read_pcap(data[:-3]) == read_pcap(data)[:1]  # a crash mid-record
    with pytest.raises(ValueError, match="pcap"):
        read_pcap(b"\xd4\xc3\xb2\xa1" + data[4:])


class Recorder:
    def __init__(self, ue: bytes, enb: bytes | None = None) -> None:
        self.target = Target(ue, enb, None)
        self.packets: list[bytes] = []

    def copy(self, packet: bytes) -> None:
        self.packets.append(packet)


def test_pipeline_copies_the_targets_offloaded_packets_both_ways_as_the_app_sees_them() -> None:
    p = Pipeline(TofConfig(backend="none"))
    p.set_services({"web": SERVICE})
    bearer_up(p)
    bearer_up(p, UE2, 0x101)
    rec = Recorder(UE1)
    p.mirrors = {UE1: rec}
    up = p.from_s1(*_up(UE1, 0x100, b"hello"))
    other = p.from_s1(*_up(UE2, 0x101, b"other"))
    assert up[0][0] == APPS
    assert other[0][0] == APPS
    down = udp_packet(APP, UE1, 8080, 40000, b"answer")
    assert p.from_apps(down + b"\x00" * 6, 2.0)  # link padding is not copied
    p.from_apps(udp_packet(APP, UE2, 8080, 40000, b"x"), 2.0)
    # Uplink: what the app received (after the NAT); downlink: what the app sent.
    assert rec.packets == [up[0][1], down]
    # A bearer-narrowed target: another eNB's bearer of the same UE is not copied.
    narrow = Recorder(UE1, ENB2)
    p.mirrors = {UE1: narrow}
    send_up(p, b"x", 3.0)
    reply(p, b"y", 3.0)
    assert narrow.packets == []
    # Stopping is immediate: no copy once the table no longer has it.
    p.mirrors = {}
    send_up(p, b"z", 4.0)
    assert rec.packets == [up[0][1], down]


def _up(ue: bytes, teid: int, body: bytes) -> tuple[bytes, int, float]:
    from tests.unit.tof.test_pipeline import SVC_IP, gpdu

    from fluidedge.tof.pipeline import ENB

    return gpdu(ENB1, SGW1, teid, udp_packet(ue, SVC_IP, 40000, 8080, body)), ENB, 2.0


def test_intercept_api_row() -> None:
    it = Intercept("a", "198.18.100.1", None, None, None, "/x/a.pcap", 1.0)
    assert it.to_api()["target"] == {"ue": "198.18.100.1", "enb": None, "sgw": None}
    assert it.matcher() == Target(UE1, None, None)
