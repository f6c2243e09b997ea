"""The PDN's DNS server on the real kernel: UEs resolve the lab zone through their tunnels in
every lab mode with a path to the PDN (bridge, routed; tof has a TOF in the way: see
tests/e2e/mec/test_dns_offload.py) and in the osmo flavour, garbage does not stop it, and the
host namespace reaches the DNS server (its one route to the PDN) and nothing else there."""

from __future__ import annotations

import sys

import dns.message
import pytest

from fluidedge.lab.config import load
from fluidedge.lab.lab import Lab
from tests.fixtures.dns_query import lab_query
from tests.fixtures.lab import LabFactory

pytestmark = pytest.mark.root

# Run in a namespace: send argv[2] as hex to argv[1]:53 (no answer expected).
SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(bytes.fromhex(sys.argv[2]), (sys.argv[1], 53))
"""


def test_ues_resolve_the_lab_zone_through_their_tunnels(bridge_lab: Lab) -> None:
    lab = bridge_lab
    server, pdn = str(lab.pdn_dns_address), str(lab.pdn_address)
    before = lab.pdn_dns_stats()
    assert lab_query(lab, "ue1", "www.pdn.example", server) == f"NOERROR {pdn}"
    assert lab_query(lab, "ue2", "Pdn.Example.", server, "AAAA") == f"NOERROR {lab.pdn_address6}"
    # over IPv6 inside the tunnel, to the server's IPv6 address
    assert lab.pdn_dns_address6 is not None
    assert lab_query(lab, "ue4", "pdn.example", str(lab.pdn_dns_address6)) == f"NOERROR {pdn}"
    assert lab_query(lab, "ue3", "elsewhere.example", server) == "NXDOMAIN"
    assert lab_query(lab, "ue3", "pdn.example", server, "MX") == "NOERROR"  # NODATA

    # garbage and a response are counted and dropped; the server goes on answering
    response = dns.message.make_response(dns.message.make_query("pdn.example", "A")).to_wire()
    for data in ("00", "ffff" * 7, response.hex()):
        done = lab.run("ue1", [sys.executable, "-c", SEND, server, data])
        assert done.returncode == 0, done.stderr
    assert lab_query(lab, "ue1", "pdn.example", server) == f"NOERROR {pdn}"
    after = lab.pdn_dns_stats()
    assert after["answered"] - before["answered"] == 4
    assert after["nxdomain"] - before["nxdomain"] == 1
    assert after["nodata"] - before["nodata"] == 1
    assert after["dropped"] - before["dropped"] == 3


def test_the_host_namespace_reaches_the_dns_server_and_nothing_else_of_the_pdn(
    bridge_lab: Lab,
) -> None:
    lab = bridge_lab
    answer = lab_query(lab, "host", "www.pdn.example", str(lab.pdn_dns_address))
    assert answer == f"NOERROR {lab.pdn_address}"
    ping = lab.run("host", ["ping", "-c", "1", "-W", "1", str(lab.pdn_address)])
    assert ping.returncode != 0  # the PDN host's web address: no route from the host
    routes = lab.run("host", ["ip", "-4", "route", "show", "dev", "pdn"], check=True).stdout
    assert routes.split() == [str(lab.pdn_dns_address), "scope", "link", "src",
                              str(lab.config.pdn.dns.host_address)]  # fmt: skip


@pytest.mark.parametrize("flavour", ["emulated", "osmo"])
def test_a_ue_resolves_in_routed_mode_and_in_the_osmo_flavour(
    lab_factory: LabFactory, flavour: str
) -> None:
    mode = "routed" if flavour == "emulated" else "bridge"
    lab = lab_factory(load(flavour=flavour), mode=mode)  # type: ignore[arg-type]
    server = str(lab.pdn_dns_address)
    assert lab_query(lab, "ue1", "www.pdn.example", server) == f"NOERROR {lab.pdn_address}"
    assert lab_query(lab, "ue1", "nowhere.example", server) == "NXDOMAIN"
    assert lab.pdn_dns_stats()["answered"] == 1
