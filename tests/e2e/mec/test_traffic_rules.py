"""Traffic rules classified by protocol, destination port, source address and source port, DROP,
DUPLICATE_DECAPSULATED and the encapsulated actions, on real traffic (issue 16), in the lab
with the TOF.

One app's rules all name the PDN's own address, so a packet the TOF does not take visibly
reaches the core: TCP port 80 is offloaded to the lab's edge app ``app1`` (the UE's HTTP then
gets the app's page, not the PDN's), while UDP echo to the same address still reaches the PDN.
Activating a DROP rule on the echo port over Mp1 silences the echo before the 200; replacing it
by a DUPLICATE_DECAPSULATED rule gives the echo back (the original goes on to the core) and a
decapsulated copy reaches ``app1`` (its kernel counts a datagram to a closed port). A
FORWARD_ENCAPSULATED rule hands the app the tunnel's packet in place of the core (no echo),
DUPLICATE_ENCAPSULATED as a copy (the echo comes back); in both the app gets it on its UDP port
2152, from the UE's address, GTP-U header and datagram as they were. A DROP rule on other UEs'
addresses leaves ue1's echo answered; one on ue1's address and a range of source ports silences
those ports only. The deactivated offload hands port 80 back to the core. Both backends: the
fast path's program matches service addresses only, so it punts every packet to a classified
address to its agent, whose pipeline decides.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fluidedge.lab.lab import Lab
from fluidedge.tof.launch import lab_tof_section, s1_pairs, wait_s1_ready
from tests.fixtures.daemon import TOKEN, DaemonFactory
from tests.fixtures.netns import snmp_counters
from tests.fixtures.wait import scaled, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
AS = "/mec_app_support/v1"

# Run in the UE's namespace: one UDP datagram to argv[1]:argv[2] from port argv[4] (0: any),
# the answer (or "silence").
UE_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[4])))
s.settimeout(float(sys.argv[3]))
s.sendto(b"echo", (sys.argv[1], int(sys.argv[2])))
try:
    print(s.recvfrom(100)[0].decode())
except OSError:
    print("silence")
"""


# Run in the app's namespace: bind UDP 2152, say so, print "<source> <hex of the datagram>" of
# the first one (or "silence").
APP_GTPU = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 2152))
s.settimeout(float(sys.argv[1]))
print("bound", flush=True)
try:
    data, peer = s.recvfrom(65535)
    print(peer[0], data.hex())
except OSError:
    print("silence")
"""


@pytest.fixture(scope="module")
def lab(module_lab_factory: Callable[..., Lab]) -> Lab:
    return module_lab_factory(mode="tof")


def _rule(rule_id: str, action: str, state: str, flt: dict[str, Any]) -> dict[str, Any]:
    return {"trafficRuleId": rule_id, "filterType": "FLOW", "priority": 1,
            "trafficFilter": [flt], "action": action, "state": state}  # fmt: skip


def _page(lab: Lab) -> str:
    done = lab.run("ue1", ["curl", "-s", "-m", str(scaled(3.0)), f"http://{lab.pdn_address}/"])
    return done.stdout.strip() if done.returncode == 0 else f"failed: {done.returncode}"


def _echo(lab: Lab, timeout: float = 2.0, sport: int = 0) -> str:
    argv = [sys.executable, "-c", UE_ECHO, str(lab.pdn_address), str(lab.pdn_udp_echo_port)]
    done = lab.run("ue1", [*argv, str(scaled(timeout)), str(sport)], timeout=scaled(30))
    return done.stdout.strip()


def _tunnel_packet_at_app(lab: Lab, app: str, heard: str) -> tuple[str, bytes]:
    """Send the UE's echo while ``app`` listens on UDP 2152: (the echo's answer, what the app
    got there as (source, datagram))."""
    listener = subprocess.Popen(
        lab.argv(app, [sys.executable, "-c", APP_GTPU, str(scaled(5.0))]),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "bound"
        answer = _echo(lab, timeout=1.0 if heard == "silence" else 2.0)
        out, _ = listener.communicate(timeout=scaled(30))
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    source, _, data = out.strip().partition(" ")
    return answer, (source, bytes.fromhex(data) if data else b"")


def _closed_port_datagrams(lab: Lab, node: str) -> int:
    """The ``Udp: NoPorts`` counter of ``node``'s namespace: datagrams to a closed port."""
    return snmp_counters(lab.ns(node))["Udp"]["NoPorts"]


@pytest.mark.parametrize("backend", ["userspace", "fastpath"])
def test_port_classification_drop_and_duplicate_on_real_traffic(
    lab: Lab, daemon_factory: DaemonFactory, backend: str
) -> None:
    (app_name, app_address), *_ = lab.apps.items()
    pdn = str(lab.pdn_address)
    web = {"dstAddress": [pdn], "protocol": ["TCP"], "dstPort": [str(lab.config.pdn.http_port)]}
    echo = {"dstAddress": [pdn], "protocol": ["UDP"], "dstPort": [str(lab.pdn_udp_echo_port)]}
    rules = [
        _rule("web", "FORWARD_DECAPSULATED", "ACTIVE", web),
        _rule("block", "DROP", "INACTIVE", echo),
        _rule("copy", "DUPLICATE_DECAPSULATED", "INACTIVE", echo),
        _rule("tunnel", "FORWARD_ENCAPSULATED", "INACTIVE", echo),
        _rule("tunnelcopy", "DUPLICATE_ENCAPSULATED", "INACTIVE", echo),
    ]
    daemon = daemon_factory(parts={"tof": lab_tof_section(lab, backend=backend), "mec": {}})
    client = daemon.client()
    try:
        assert wait_s1_ready(client, s1_pairs(lab), timeout=scaled(20))
        body = {"name": f"rules{os.getpid() % 1000}", "dataAddress": str(app_address),
                "trafficRules": rules}  # fmt: skip
        made = httpx.post(f"{daemon.url}/v1/apps", headers=ADMIN, json=body, timeout=30)
        assert made.status_code == 201, made.text
        app = made.json()["appInstanceId"]
        auth = {"Authorization": f"Bearer {made.json()['token']}"}
        url = f"{daemon.url}{AS}/applications/{app}"

        def put(rule: dict[str, Any]) -> None:
            answer = httpx.put(f"{url}/traffic_rules/{rule['trafficRuleId']}", headers=auth,
                               json=rule, timeout=30)  # fmt: skip
            assert answer.status_code == 200, answer.text

        assert _page(lab).startswith(f"pdn {pdn}")  # not READY: nothing offloaded
        ready = httpx.post(f"{url}/confirm_ready", headers=auth, json={"indication": "READY"},
                           timeout=30)  # fmt: skip
        assert ready.status_code == 204, ready.text
        # Port 80 of the PDN's address goes to the app (the first packet may wait for ARP).
        wait_for(
            lambda: _page(lab).startswith(f"edge-app {app_name}"),
            scaled(20),
            lambda: f"the app's page (last: {_page(lab)})",
        )
        assert _echo(lab) == "echo"  # UDP to the same address: not classified, the core's

        put({**rules[1], "state": "ACTIVE"})  # DROP the echo port
        assert _echo(lab, timeout=1.0) == "silence"
        assert _page(lab).startswith(f"edge-app {app_name}")  # the other rule still applies
        stats = client.get("/stats")
        assert int(stats["drops"]["classified_drop"]) >= 1

        before = _closed_port_datagrams(lab, app_name)
        put({**rules[1], "state": "INACTIVE"})
        put({**rules[2], "state": "ACTIVE"})  # DUPLICATE: the core answers, the app gets a copy
        assert _echo(lab) == "echo"
        wait_for(
            lambda: _closed_port_datagrams(lab, app_name) > before,
            scaled(5),
            lambda: f"a copy at {app_name} (NoPorts {_closed_port_datagrams(lab, app_name)})",
        )
        stats = client.get("/stats")
        assert int(stats["counters"]["classified_duplicated"]) >= 1
        if backend == "fastpath":  # the program punts a classified address to the agent
            assert int(stats["fastpath"]["punt_service_punt"]) >= 1

        # Encapsulated: the tunnel's packet, from the UE to the app's port 2152, instead of
        # the core (no echo) or as a copy (the echo comes back).
        put({**rules[2], "state": "INACTIVE"})
        for rule, heard in ((rules[3], "silence"), (rules[4], "echo")):
            put({**rule, "state": "ACTIVE"})
            answer, (source, gtp) = _tunnel_packet_at_app(lab, app_name, heard)
            assert answer == heard
            assert source == str(lab.ues["ue1"])
            assert gtp[0] & 0xF0 == 0x30  # GTPv1, protocol type GTP
            assert gtp[1] == 0xFF  # a G-PDU
            assert gtp.endswith(b"echo")  # the UE's datagram inside, as it left the UE
            put({**rule, "state": "INACTIVE"})
        assert int(client.get("/stats")["counters"]["classified_encapsulated"]) >= 2

        # Source filters: a DROP of other UEs' echo leaves ue1's alone; one of ue1's prefix and
        # one source port silences that port only.
        ue1 = lab.ues["ue1"]
        others = [str(a) for name, a in lab.ues.items() if name != "ue1"] or ["198.18.254.1"]
        put({**rules[1], "state": "ACTIVE", "trafficFilter": [{**echo, "srcAddress": others}]})
        assert _echo(lab, sport=40404) == "echo"
        mine = {**echo, "srcAddress": [f"{ue1}/32"], "srcPort": ["40404-40410"]}
        put({**rules[1], "state": "ACTIVE", "trafficFilter": [mine]})
        assert _echo(lab, timeout=1.0, sport=40404) == "silence"
        assert _echo(lab, sport=40411) == "echo"
        shown = [s for s in client.get("/service") if s.get("action") == "drop"]
        assert [(s["match"]["sources"], s["match"]["sourcePorts"]) for s in shown] == [
            ([f"{ue1}/32"], [[40404, 40410]])
        ]
        put({**rules[1], "state": "INACTIVE"})

        put({**rules[0], "state": "INACTIVE"})
        assert _page(lab).startswith(f"pdn {pdn}")  # port 80 is the core's again
    finally:
        client.close()
        daemon.stop()
