"""The TOF's tc programs and devices taken away from outside come back, on both backends.

``tc qdisc del dev X clsact`` (by hand, or a tool that rebuilds a device's qdiscs) takes every
filter of the device with it. On the fast path the S1 side whose ``s1_ingress`` went is cut:
its frames are switched by nothing (real frames show it); without ``apps_egress`` no app reply
reaches a UE. On the userspace backend the agent's sockets go on forwarding, but the guard that
fails S1 open when the agent dies is gone. ``heal()`` (the daemon calls it every
``program_check_interval``) names what it found missing and puts it back.

The same for the devices: ``ip link del`` of the apps TUN (both backends) or of the fast path's
punt veth. A deleted TUN's fd polls POLLERR and reads EBADFD for ever: the data plane stopped
offloading and spun a core on it, for good. Now it stops polling it at once, S1 is left to
the kernel program (which fails open, one copy of each frame), and ``heal()`` re-creates it.
"""

from __future__ import annotations

import logging
import socket

import pytest

from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import classify
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.proc import run
from fluidedge.tof.failopen import s1_program_attached

from .scenario import (
    APP,
    APP_PORT,
    ENB1,
    PDN,
    SVC,
    UE1,
    Backend,
    P,
    inner_udp,
    learn_bearer,
    up,
)
from .topo import Topo

pytestmark = pytest.mark.root

UE = bytes((198, 18, 100, 21))


def _crosses(t: Topo, teid: int) -> bool:
    """Does an uplink G-PDU sent by the eNB reach the SGW side (retried: a few frames)?"""
    frame = up(ENB1, teid, inner_udp(UE, PDN, 4000, 53, b"pdn"))
    for _ in range(3):
        t.send("enb", frame)
        got = t.collect(0.3)
        if any(classify(f).teid == teid for f in got["sgw"]):
            return True
    return False


def _take_off(t: Topo, dev: str) -> None:
    run(["tc", "-n", t.host, "qdisc", "del", "dev", dev, "clsact"])


def test_programs_taken_off_from_outside_come_back(
    running: tuple[Topo, Backend, str], caplog: pytest.LogCaptureFixture
) -> None:
    t, backend, kind = running
    heal = backend.heal  # type: ignore[attr-defined]
    assert _crosses(t, 0x301)
    assert heal() == []  # all in place: nothing done
    assert backend.stats()["io"].get("programs_reattached", 0) == 0  # type: ignore[union-attr]

    _take_off(t, "s1enb")
    assert not s1_program_attached(t.host, "s1enb")
    if kind == "fastpath":
        _take_off(t, backend.config.apps_tun)  # type: ignore[attr-defined]
        assert not _crosses(t, 0x302)  # the eNB side is cut: nothing switches its frames
        wanted = [
            f"apps_egress on {backend.config.apps_tun} egress",  # type: ignore[attr-defined]
            "s1_ingress on s1enb ingress",
        ]
    else:
        wanted = ["s1_guard on s1enb ingress"]

    with caplog.at_level(logging.ERROR, logger="fluidedge.tof"):
        assert heal() == wanted
    assert s1_program_attached(t.host, "s1enb")
    assert _crosses(t, 0x303)
    assert heal() == []
    io = backend.stats()["io"]
    assert io["programs_reattached"] == len(wanted)  # type: ignore[index]
    said = [r.getMessage() for r in caplog.records]
    assert any("taken off from outside; re-attached" in m and wanted[-1] in m for m in said)


def _offload_and_core(t: Topo, teid: int) -> tuple[int, int]:
    """Five datagrams to the offloaded service and five to the PDN from UE1: how many reached
    the app, and how many G-PDUs of ``teid`` reached the SGW side."""
    for i in range(5):
        t.send("enb", up(ENB1, teid, inner_udp(UE1, P(SVC), 41000, APP_PORT, b"s%d" % i)))
        t.send("enb", up(ENB1, teid, inner_udp(UE1, PDN, 41000, 53, b"p%d" % i)))
    got = t.collect(0.3)
    app = [f for f in got["app"] if f[12:14] == b"\x08\x00" and f[23] == 17]
    return len(app), sum(1 for f in got["sgw"] if classify(f).teid == teid)


def _io(backend: Backend) -> dict[str, int]:
    io = backend.stats()["io"]
    assert isinstance(io, dict)
    return io


def test_the_apps_tun_deleted_from_outside_is_created_again(
    running: tuple[Topo, Backend, str], caplog: pytest.LogCaptureFixture
) -> None:
    t, backend, _kind = running
    heal = backend.heal  # type: ignore[attr-defined]
    tun = backend.config.apps_tun  # type: ignore[attr-defined]
    learn_bearer(t)
    assert _offload_and_core(t, 0x100) == (5, 5)

    with caplog.at_level(logging.ERROR, logger="fluidedge.tof"):
        run(["ip", "-n", t.host, "link", "del", tun])
        # S1 fails open meanwhile: every frame reaches the core once (none twice), none the app
        assert _offload_and_core(t, 0x100) == (0, 10)
        io = _io(backend)
        assert io["apps_tun_lost"] == 1
        assert not any(k.startswith("rx_error_apps") for k in io)  # no spin on the dead fd
        assert heal()[0] == f"the apps TUN {tun} re-created (deleted from outside)"
    assert _offload_and_core(t, 0x100) == (5, 5)
    assert heal() == []
    assert _io(backend)["apps_tun_recreated"] == 1
    said = [r.getMessage() for r in caplog.records]
    assert any("was deleted from outside; offload stopped" in m for m in said)
    assert any(f"the apps TUN {tun} re-created; offload resumed" in m for m in said)
    # One event, one line: the new TUN's own program is attached, not reported as taken off.
    assert not any("taken off from outside" in m for m in said), said
    assert _io(backend).get("programs_reattached", 0) == 0


@pytest.mark.parametrize("running", ["fastpath"], indirect=True)
def test_the_punt_veth_deleted_from_outside_is_created_again(
    running: tuple[Topo, Backend, str],
) -> None:
    """Without it nothing is punted to the agent: a new bearer is never learned."""
    t, backend, _kind = running
    heal = backend.heal  # type: ignore[attr-defined]
    punt0, punt1 = backend.punt0, backend.punt1  # type: ignore[attr-defined]
    run(["ip", "-n", t.host, "link", "del", punt0])
    assert heal() == [
        f"the punt veth {punt0}/{punt1} re-created (deleted from outside)",
        f"drop_all on {punt0} ingress",
        f"drop_all on {punt1} ingress",
    ]
    learn_bearer(t)  # learned through the new pair
    assert _offload_and_core(t, 0x100) == (5, 5)
    assert heal() == []
    assert _io(backend)["punt_ports_recreated"] == 1


def _replies_reach_the_ue(t: Topo) -> int:
    """Five datagrams from the app to UE1 (as its replies are): how many reached the eNB side
    as G-PDUs of UE1's downlink TEID (0x200)."""
    raw = call_in_netns(
        t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    )
    try:
        for i in range(5):
            body = udp.encode(APP, UE1, APP_PORT, 41000, b"r%d" % i)
            raw.sendto(ipv4.encode(APP, UE1, 17, body), (socket.inet_ntoa(UE1), 0))
    finally:
        raw.close()
    got = t.collect(0.3)
    return sum(1 for f in got["enb"] if classify(f).teid == 0x200)


def test_the_ue_pools_route_deleted_from_outside_is_added_again(
    running: tuple[Topo, Backend, str],
) -> None:
    """``ip route del <UE pool> dev tofapps``: the apps' replies to the UEs go nowhere (the
    downlink of every offloaded flow), until the check adds the route again."""
    t, backend, _kind = running
    heal = backend.heal  # type: ignore[attr-defined]
    tun = backend.config.apps_tun  # type: ignore[attr-defined]
    learn_bearer(t)
    assert _offload_and_core(t, 0x100) == (5, 5)  # the flow the replies belong to
    assert _replies_reach_the_ue(t) == 5
    run(["ip", "-n", t.host, "route", "del", "198.18.100.0/24", "dev", tun])
    assert _replies_reach_the_ue(t) == 0
    assert heal() == [f"route 198.18.100.0/24 dev {tun}"]
    assert _replies_reach_the_ue(t) == 5
    assert heal() == []
    assert _io(backend)["apps_routes_readded"] == 1


def test_the_apps_side_changed_from_outside_is_set_back(
    running_with_apps_side: tuple[Topo, Backend, str],
) -> None:
    """What the TOF set up at start on the apps side, taken away: the apps interface's gateway
    address flushed (its bridge re-made by another tool, ``ip addr flush``: the route to the
    apps goes with it, so nothing offloaded reaches them), then forwarding turned off (a
    hardening script: the app's replies to the UE are not forwarded). Either way offloaded
    flows are lost until the check sets it back."""
    t, backend, _kind = running_with_apps_side
    heal = backend.heal  # type: ignore[attr-defined]
    learn_bearer(t)
    assert _offload_and_core(t, 0x100) == (5, 5)
    assert _replies_reach_the_ue(t) == 5
    assert heal() == []

    run(["ip", "-n", t.host, "addr", "flush", "dev", "apps"])
    assert _offload_and_core(t, 0x100) == (0, 5)  # the offloaded half goes nowhere
    assert heal() == [
        "the apps side: apps interface apps lacks the gateway address 198.19.0.1/24 "
        "(fix: ip addr add 198.19.0.1/24 dev apps)"
    ]
    assert _offload_and_core(t, 0x100) == (5, 5)
    assert _replies_reach_the_ue(t) == 5
    assert heal() == []

    run(["ip", "netns", "exec", t.host, "sysctl", "-qw", "net.ipv4.ip_forward=0"])
    assert _replies_reach_the_ue(t) == 0
    assert heal() == [
        "the apps side: net.ipv4.ip_forward is 0 in namespace "
        f"{t.host} (fix: sysctl -w net.ipv4.ip_forward=1)"
    ]
    assert _replies_reach_the_ue(t) == 5
    assert _offload_and_core(t, 0x100) == (5, 5)
    assert heal() == []
    assert _io(backend)["apps_side_restored"] == 2


def test_a_gone_apps_interface_is_said_once(
    running_with_apps_side: tuple[Topo, Backend, str], caplog: pytest.LogCaptureFixture
) -> None:
    """An apps interface deleted is nothing the TOF can make (it is the network's): said once
    per distinct state, at error level, and set back once it is there again."""
    t, backend, _kind = running_with_apps_side
    heal = backend.heal  # type: ignore[attr-defined]
    # gone under its name (down first: Debian 12's kernel renames no device that is up)
    run(["ip", "-n", t.host, "link", "set", "apps", "down"])
    run(["ip", "-n", t.host, "link", "set", "apps", "name", "appsx"])
    with caplog.at_level(logging.ERROR, logger="fluidedge.tof"):
        assert heal() == []
        assert heal() == []
    said = [r for r in caplog.records if "apps interface apps does not exist" in r.getMessage()]
    assert len(said) == 1
    assert _io(backend)["apps_side_broken"] == 1
    run(["ip", "-n", t.host, "link", "set", "appsx", "name", "apps"])
    assert heal() == ["the apps side: apps interface apps is down (fix: ip link set apps up)"]
    assert heal() == []
    learn_bearer(t)
    assert _offload_and_core(t, 0x100) == (5, 5)
    assert _replies_reach_the_ue(t) == 5
