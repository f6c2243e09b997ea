"""The fast path at its limits: full maps, punt budgets under a flood, others' tc filters,
per-service policy flags (issue 14 items 2, 4, 7, 8)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from fluidedge.codec.stack import ethernet_frame
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.proc import run
from fluidedge.tof.dataplane_common import packet_drops
from fluidedge.tof.fastpath import layout as L
from fluidedge.tof.fastpath.backend import FastPathBackend
from fluidedge.tof.metrics import render
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import ENB
from fluidedge.tof.userspace import UserspaceBackend
from tests.fixtures.netns import snmp_counters

from .scenario import (
    APP_PORT,
    ENB1,
    ENB2,
    PDN,
    SGW1,
    SVC,
    UE1,
    UE2,
    P,
    bad_udp_length,
    config,
    gtp_message,
    inner_udp,
    learn_bearer,
    up,
)
from .topo import APP_IP, MAC_ENB, MAC_SGW, Topo, topology

pytestmark = pytest.mark.root


def _fast(backend: FastPathBackend) -> dict[str, int]:
    fast = backend.stats()["fastpath"]
    assert isinstance(fast, dict)
    return fast


def _maps(backend: FastPathBackend) -> dict[str, dict[str, int | bool]]:
    return backend.map_report()


def _app_datagrams(got: dict[str, list[bytes]]) -> list[bytes]:
    return [f for f in got["app"] if f[12:14] == b"\x08\x00" and f[23] == 17]


def test_full_maps_are_counted_alarmed_served_by_the_agent_and_retried() -> None:
    with topology("m") as t:
        sink = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        sink.bind((APP_IP, APP_PORT))
        backend = FastPathBackend(config(t), map_entries={"tunnels": 2, "flows": 1})
        backend.start()
        try:
            assert _maps(backend)["tunnels"]["capacity"] == 2
            backend.apply(
                {
                    "one": Service("one", SVC, APP_IP),
                    "two": Service("two", "198.18.50.2", APP_IP),
                }
            )
            learn_bearer(t)  # UE1: uplink + downlink key, the tunnels map is full
            # A second bearer does not fit: refused, counted, its traffic through the agent.
            second = up(ENB2, 0x301, inner_udp(UE2, PDN, 40000, 53, b"ue2"))
            t.send("enb", second)
            assert t.collect(0.3, until=lambda got: got["sgw"])["sgw"] == [second]
            report = _maps(backend)["tunnels"]
            assert report["entries"] == 2
            assert report["waiting"] == 1
            assert report["full"] is True
            assert int(report["fullFailures"]) >= 1
            before = _fast(backend)
            t.send("enb", second)
            # not lost: the agent forwards it
            assert t.collect(0.3, until=lambda got: got["sgw"])["sgw"] == [second]
            after = _fast(backend)
            assert after["punt_unknown_tunnel"] == before["punt_unknown_tunnel"] + 1
            # Flows: the map holds one; the second service's flow stays with the agent.
            flow1 = up(ENB1, 0x100, inner_udp(UE1, P(SVC), 41000, APP_PORT, b"f1"))
            flow2 = up(ENB1, 0x100, inner_udp(UE1, P("198.18.50.2"), 41001, APP_PORT, b"f2"))
            for frame in (flow1, flow2):
                t.send("enb", frame)
                assert len(_app_datagrams(t.collect(0.3, until=_app_datagrams))) == 1
            assert _maps(backend)["flows"]["waiting"] == 1
            before = _fast(backend)
            t.send("enb", flow1)
            t.send("enb", flow2)
            arrived = t.collect(0.3, until=lambda got: len(_app_datagrams(got)) >= 2)
            assert len(_app_datagrams(arrived)) == 2
            after = _fast(backend)
            assert after["offloaded_uplink"] == before["offloaded_uplink"] + 1  # flow 1 only
            assert after["punt_new_flow"] == before["punt_new_flow"] + 1  # flow 2: agent
            metrics = render(backend.stats(), backend.tunnels())
            assert 'fluidedge_tof_fastpath_map_full{map="flows"} 1' in metrics
            assert 'fluidedge_tof_fastpath_map_full{map="tunnels"} 1' in metrics
            # Room again (service "one" and its flow go): the waiting flow is written.
            backend.apply({"two": Service("two", "198.18.50.2", APP_IP)})
            assert _maps(backend)["flows"]["waiting"] == 0
            before = _fast(backend)
            t.send("enb", flow2)
            assert len(_app_datagrams(t.collect(0.3))) == 1
            assert _fast(backend)["offloaded_uplink"] == before["offloaded_uplink"] + 1
            metrics = render(backend.stats(), backend.tunnels())
            assert 'fluidedge_tof_fastpath_map_full{map="flows"} 0' in metrics
        finally:
            backend.stop()
            sink.close()


def _malformed(frame: bytes, i: int) -> bytes:
    """A G-PDU made malformed: a GTP-U length that is not the IP's, or GTP version 2."""
    out = bytearray(frame)
    gtp = 14 + 20 + 8
    if i % 2:
        out[gtp + 3] ^= 0x04  # GTP-U length
    else:
        out[gtp] = (out[gtp] & 0x0F) | 0x50  # version 2
    return bytes(out)


def error_indication(src: bytes, dst: bytes, teid: int) -> bytes:
    """TS 29.281 §7.3.1 from ``src``: "I do not know TEID ``teid``" (TEID Data I, Peer Address)."""
    body = b"\x10" + teid.to_bytes(4, "big") + b"\x85\x00\x04" + src
    return ethernet_frame(MAC_SGW, MAC_ENB, gtp_message(src, dst, 26, 0, body))


def test_control_messages_and_learning_keep_their_budget_under_a_data_flood() -> None:
    with topology("b") as t:
        # A control budget (burst 40) that the echoes and the Error Indication fit in, and
        # that the malformed flood (400 frames) would exhaust if it were filed as control.
        backend = FastPathBackend(
            config(t), punt_rate=50, punt_burst=20, control_rate=50, control_burst=40
        )
        backend.start()
        try:
            learn_bearer(t)
            to_pdn = inner_udp(UE1, PDN, 40000, 53, b"flood")
            g_pdu = up(ENB1, 0x100, to_pdn)
            flood = bad_udp_length(g_pdu)  # a data punt (the agent's call)
            echo = ethernet_frame(MAC_SGW, MAC_ENB, gtp_message(ENB1, SGW1, 1, 0))
            sent_echo = 0
            for i in range(600):
                t.send("enb", flood)
                if i % 20 == 0:
                    t.send("enb", echo)
                    sent_echo += 1
                if i % 3 == 0:  # malformed G-PDUs: data budget, not control
                    t.send("enb", _malformed(g_pdu, i))
                if i == 300:  # a new bearer and an Error Indication in the middle of the flood
                    t.send("enb", up(ENB2, 0x301, inner_udp(UE2, PDN, 40000, 53, b"new")))
                    t.send("enb", error_indication(ENB1, SGW1, 0x200))
            got = t.collect(1.0)["sgw"]
            assert len(got) == 600 + sent_echo + 200 + 2  # nothing lost
            stats = backend.stats()
            fast, counters = stats["fastpath"], stats["counters"]
            assert isinstance(fast, dict)
            assert isinstance(counters, dict)
            assert fast["punt_limited_data"] > 0  # the floods were limited...
            assert fast["punt_limited_control"] == 0  # ...the control messages were not
            assert fast["punt_limited_learn"] == 0
            assert counters["gtpu_type_1"] == sent_echo  # every one reached the pipeline
            assert counters["gtpu_type_26"] == 1  # so did the Error Indication...
            bearer = next(b for b in backend.pipeline.bearers.values() if b.ue == UE1)
            assert bearer.dl_teid is None  # ...which made it forget the downlink TEID
            assert counters["tunnels_learned_uplink"] == 2  # UE1, then UE2 during the flood
            assert fast["punt_gtp_malformed"] > 0  # the malformed G-PDUs: their own reason
            # An End Marker after the flood still reaches the agent, which drops the key.
            end_marker = ethernet_frame(MAC_ENB, MAC_SGW, gtp_message(SGW1, ENB1, 254, 0x200))
            t.send("sgw", end_marker)
            t.collect(0.3)
            counters = backend.stats()["counters"]
            assert isinstance(counters, dict)
            assert counters["gtpu_type_254"] == 1
        finally:
            backend.stop()


def test_punts_the_agent_does_not_read_in_time_are_counted() -> None:
    """Punted frames beyond what the agent reads are dropped at its punt socket's queue: the
    drops are counted (PACKET_STATISTICS) in GET /stats and /metrics, not silent."""
    with topology("q") as t:
        backend = FastPathBackend(config(t), punt_rate=0)  # data punts unlimited
        backend.start()
        try:
            learn_bearer(t)
            assert _fast(backend)["punt_socket_dropped"] == 0
            body = bytes(1300)
            frame = bad_udp_length(up(ENB1, 0x100, inner_udp(UE1, PDN, 40000, 53, body)))
            rcvbuf = backend._rx[ENB].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            sent = 3 * rcvbuf // len(frame) + 500  # three times what the queue holds
            with backend._lock:  # the agent reads nothing meanwhile
                for _ in range(sent):
                    t.send("enb", frame)
            deadline = time.monotonic() + 30.0
            while _fast(backend)["punt_socket_dropped_enb"] == 0:
                assert time.monotonic() < deadline, "no punt socket drop counted"
                time.sleep(0.05)
            t.collect(0.5)  # the agent forwards what it read
            stats = backend.stats()
            fast, io = stats["fastpath"], stats["io"]
            assert isinstance(fast, dict)
            assert isinstance(io, dict)
            dropped = fast["punt_socket_dropped_enb"]
            assert fast["punt_socket_dropped"] == dropped + fast["punt_socket_dropped_sgw"]
            # What the kernel punted was read by the agent or counted as dropped (the veth's
            # own backlog may drop some more before the socket: <=).
            assert io["punt_enb"] + dropped <= fast["punted_from_enb"]
            assert fast["punted_from_enb"] <= sent + 1
            metrics = render(backend.stats(), backend.tunnels())
            assert f'fluidedge_tof_fastpath_total{{kind="punt_socket_dropped"}} {dropped}' in (
                metrics
            )
        finally:
            backend.stop()


def _filters(t: Topo, dev: str) -> str:
    return run(
        ["ip", "netns", "exec", t.host, "tc", "filter", "show", "dev", dev, "ingress"]
    ).stdout


def test_cleanup_leaves_a_foreign_clsact_filter_in_place() -> None:
    with topology("c") as t:
        tc = ["ip", "netns", "exec", t.host, "tc"]
        run([*tc, "qdisc", "add", "dev", "s1enb", "clsact"])
        # Another tool's filter: a classic BPF classifier that matches nothing (harmless).
        run([*tc, "filter", "add", "dev", "s1enb", "ingress", "pref", "200", "bpf",
             "bytecode", "1,6 0 0 0,", "classid", "1:1"])  # fmt: skip
        backend = FastPathBackend(config(t).model_copy(update={"fail_open": False}))
        backend.start()
        try:
            assert "s1_ingress" in _filters(t, "s1enb")
            assert "pref 200 bpf" in _filters(t, "s1enb")
        finally:
            backend.stop()
        # Ours gone on both interfaces, the foreign one still attached and working.
        assert "s1_ingress" not in _filters(t, "s1enb")
        assert "pref 200 bpf" in _filters(t, "s1enb")
        assert "s1_ingress" not in _filters(t, "s1sgw")
        # A clsact qdisc we created and left empty is removed.
        qdiscs = run([*tc, "qdisc", "show", "dev", "s1sgw"]).stdout
        assert "clsact" not in qdiscs


def test_service_flags_punt_or_send_through_the_stack() -> None:
    with topology("f") as t:
        sink = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        sink.bind((APP_IP, APP_PORT))
        backend = FastPathBackend(config(t))
        backend.start()
        try:
            backend.apply({"web": Service("web", SVC, APP_IP)})
            learn_bearer(t)
            frame = up(ENB1, 0x100, inner_udp(UE1, P(SVC), 41000, APP_PORT, b"x"))
            t.send("enb", frame)  # first packet: flow created by the agent
            t.collect(0.3)

            def burst(n: int = 10) -> tuple[int, dict[str, int], int]:
                fwd0, fast0 = _forwarded(t), _fast(backend)
                for _ in range(n):
                    t.send("enb", frame)
                got = len(_app_datagrams(t.collect(0.3)))
                fast = _fast(backend)
                delta = {k: fast.get(k, 0) - fast0.get(k, 0) for k in fast}
                return got, delta, _forwarded(t) - fwd0

            got, delta, forwarded = burst()
            assert (got, delta["offloaded_uplink"], forwarded) == (10, 10, 0)  # program routes
            backend.set_service_flags("web", L.SERVICE_VIA_STACK)
            got, delta, forwarded = burst()
            # Still decapsulated in the kernel, but routed by the stack (netfilter sees it).
            assert (got, delta["offloaded_uplink"]) == (10, 10)
            assert forwarded >= 10
            backend.set_service_flags("web", L.SERVICE_PUNT)
            got, delta, _ = burst()
            assert (got, delta["offloaded_uplink"], delta["punt_service_punt"]) == (10, 0, 10)
            backend.set_service_flags("web", 0)
            got, delta, forwarded = burst()
            assert (got, delta["offloaded_uplink"], forwarded) == (10, 10, 0)
        finally:
            backend.stop()
            sink.close()


def test_filter_offloaded_puts_every_service_through_the_hosts_firewall() -> None:
    """A host firewall rule on the apps side (what security groups install) drops the
    offloaded datagrams with ``filter_offloaded``; without it the program routes them past
    netfilter and the same rule never sees them (the bypass the option closes)."""
    with topology("g") as t:
        sink = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        sink.bind((APP_IP, APP_PORT))
        try:
            table = ["nft", "-n"]  # nft is run inside the TOF host's namespace below
            rules = (
                "table inet fefilt {\n  chain filter_fwd {\n"
                "    type filter hook forward priority 0;\n"
                f"    udp dport {APP_PORT} counter drop\n  }}\n}}\n"
            )
            got: dict[bool, int] = {}
            for filtered in (False, True):
                backend = FastPathBackend(
                    config(t).model_copy(update={"filter_offloaded": filtered})
                )
                backend.start()
                try:
                    assert backend.stats()["offload_filtered"] is filtered
                    backend.apply({"web": Service("web", SVC, APP_IP)})
                    learn_bearer(t)
                    sport = 41000 + filtered
                    first = up(ENB1, 0x100, inner_udp(UE1, P(SVC), sport, APP_PORT, b"f"))
                    frame = up(ENB1, 0x100, inner_udp(UE1, P(SVC), sport, APP_PORT, b"x"))
                    t.send("enb", first)  # the first packet: the agent creates the flow
                    t.collect(0.3)
                    if not filtered:  # after the first packet resolved the app's neighbour
                        # entry: without it the program hands packets to the stack anyway
                        run(["ip", "netns", "exec", t.host, *table, "-f", "-"], input_text=rules)
                    fast0 = _fast(backend)
                    for _ in range(10):
                        t.send("enb", frame)
                    # the burst's datagrams only (the first one, the agent's, may arrive late)
                    arrived = _app_datagrams(t.collect(0.3))
                    got[filtered] = sum(1 for f in arrived if f.endswith(b"x"))
                    # decapsulated and NATed in the kernel either way
                    assert (
                        _fast(backend)["offloaded_uplink"] - fast0.get("offloaded_uplink", 0) == 10
                    )
                finally:
                    backend.stop()
        finally:
            sink.close()
        assert got == {False: 10, True: 0}


def _forwarded(t: Topo) -> int:
    return snmp_counters(t.host)["Ip"]["ForwDatagrams"]


def test_userspace_s1_socket_overflow_is_counted() -> None:
    """The userspace backend is the wire: frames its S1 sockets' queues drop while its loop is
    behind are lost, so they are counted (PACKET_STATISTICS) in GET /stats and /metrics."""
    with topology("u") as t:
        backend = UserspaceBackend(config(t))
        backend.start()
        try:
            learn_bearer(t)
            io = backend.stats()["io"]
            assert isinstance(io, dict)
            assert io["rx_socket_dropped_enb"] == 0
            assert io["rx_socket_dropped_sgw"] == 0
            frame = up(ENB1, 0x100, inner_udp(UE1, PDN, 40000, 53, bytes(1300)))
            rx = backend._s1_tx[ENB]
            rcvbuf = rx.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            sent = 3 * rcvbuf // len(frame) + 500  # three times what the queue holds
            with backend._lock:  # the loop reads nothing meanwhile
                for _ in range(sent):
                    t.send("enb", frame)
            got = t.collect(0.5)  # the loop forwards what its socket kept
            io = backend.stats()["io"]
            assert isinstance(io, dict)
            assert io["rx_socket_dropped_enb"] > 0
            assert packet_drops(rx) == 0  # stats() read (and reset) the kernel's counter
            assert io["rx_socket_dropped_sgw"] == 0
            # A frame crossed to the SGW or was counted as dropped, never both; the veth's own
            # backlog may drop a few more before the socket (not ours to count): >= 90%.
            crossed = len(got["sgw"]) + io["rx_socket_dropped_enb"]
            assert 0.9 * sent <= crossed <= sent + 1
            metrics = render(backend.stats(), backend.tunnels())
            total = io["rx_socket_dropped_enb"]
            assert f'fluidedge_tof_io_total{{kind="rx_socket_dropped_enb"}} {total}' in metrics
        finally:
            backend.stop()


def _io(backend: UserspaceBackend) -> dict[str, int]:
    io = backend.stats()["io"]
    assert isinstance(io, dict)
    return io


def test_userspace_apps_tun_overflow_is_counted() -> None:
    """The apps' downlink is routed into the TUN, whose queue the loop reads: what it drops
    while the loop is behind (the device's tx_dropped) is counted in GET /stats and /metrics,
    the same figure iproute2 reads, and every datagram was read or counted."""
    with topology("t") as t:
        backend = UserspaceBackend(config(t))
        backend.start()
        sender = call_in_netns(t.app, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        try:
            learn_bearer(t)
            io = backend.stats()["io"]
            assert isinstance(io, dict)
            assert io["rx_tun_dropped_apps"] == 0
            ue1 = socket.inet_ntoa(UE1)
            sender.sendto(b"warm", (ue1, 40000))  # the app's ARP for its gateway, first
            deadline = time.monotonic() + 10
            while _io(backend)["rx_apps"] == io["rx_apps"]:  # read by the loop
                assert time.monotonic() < deadline
                time.sleep(0.05)
            read_before = _io(backend)["rx_apps"]
            sent = 3000  # six times the TUN's queue (txqueuelen 500)
            with backend._lock:  # the loop reads nothing meanwhile
                for _ in range(sent):
                    sender.sendto(b"x" * 64, (ue1, 40000))
            t.collect(0.5)  # the loop reads what the TUN kept
            io = backend.stats()["io"]
            assert isinstance(io, dict)
            dropped = io["rx_tun_dropped_apps"]
            assert dropped > 0
            link = json.loads(
                run(["ip", "-n", t.host, "-j", "-s", "link", "show", "tofapps"]).stdout
            )[0]
            assert dropped == link["stats64"]["tx"]["dropped"]  # iproute2's reading
            # Read by the loop or counted, never both: the veth's backlog may drop a few more
            # before the TUN (not ours to count): >= 90%; the TUN's own kernel chatter (IPv6
            # router solicitations, MLD reports while it is new) is read too: + a few.
            assert 0.9 * sent <= io["rx_apps"] - read_before + dropped <= sent + 5
            metrics = render(backend.stats(), backend.tunnels())
            assert f'fluidedge_tof_io_total{{kind="rx_tun_dropped_apps"}} {dropped}' in metrics
        finally:
            sender.close()
            backend.stop()
