"""Port security against the attack an instance with CAP_NET_ADMIN can run: taking a
neighbour's address (IPv4 with gratuitous ARP, IPv6 with unsolicited NA) must get it nothing;
an allowed address pair is the sanctioned way to claim an extra address."""

from __future__ import annotations

import ipaddress

import pytest

from fluidedge.secgroups.model import AddressPair, default_group
from tests.fixtures.secgroups_net import Host, SgLab

pytestmark = pytest.mark.root

TIMEOUT = 2.0
VIP = "10.0.0.50"


def _neighbour_mac(host: Host, addr: str) -> str | None:
    out = host.sh("ip", "neigh", "show", addr).stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None


def _trio(lab: SgLab) -> tuple[Host, Host, Host]:
    lab.network("n", zone=31)
    with lab.driver.defer_apply():
        lab.driver.set_group(default_group())
        c = lab.host("c", "n", 1, groups=("default",), tcp=(80,))
        v = lab.host("v", "n", 2, groups=("default",), tcp=(80,))
        z = lab.host(
            "z",
            "n",
            3,
            groups=("default",),
            tcp=(80,),
            pairs=(AddressPair(ipaddress.ip_network(f"{VIP}/32")),),
        )
    return c, v, z


def test_taking_a_neighbours_address_gets_nothing(sg_lab: SgLab) -> None:
    c, v, z = _trio(sg_lab)
    assert c.call("tcp", dst=v.v4, port=80, timeout=TIMEOUT) == "v"
    assert c.call("tcp", dst=v.v6, port=80, timeout=TIMEOUT) == "v"
    # The attacker (root in its namespace) takes both of v's addresses and announces them.
    z.sh("ip", "addr", "add", f"{v.v4}/24", "dev", "eth0")
    z.sh("ip", "addr", "add", f"{v.v6}/64", "dev", "eth0", "nodad")
    z.call("garp", ifname="eth0", mac=z.mac, addr=v.v4, count=5)
    answers = [c.call("tcp", dst=v.v4, port=80, timeout=TIMEOUT) for _ in range(6)]
    answers += [c.call("tcp", dst=v.v6, port=80, timeout=TIMEOUT) for _ in range(6)]
    assert answers == ["v"] * 12
    assert _neighbour_mac(c, v.v4) == v.mac
    # and the attacker cannot speak from the stolen address either
    c_ip = c.v4
    stolen = z.sh(
        "python3", "-c",
        "import socket,sys; s=socket.socket(); s.settimeout(2); s.bind((sys.argv[1], 0));"
        " s.connect((sys.argv[2], 80)); print('connected')",
        v.v4, c_ip, check=False,
    )  # fmt: skip
    assert "connected" not in stolen.stdout


def test_an_allowed_pair_may_be_claimed(sg_lab: SgLab) -> None:
    c, _v, z = _trio(sg_lab)
    z.sh("ip", "addr", "add", f"{VIP}/24", "dev", "eth0")
    z.call("garp", ifname="eth0", mac=z.mac, addr=VIP, count=2)
    assert c.call("tcp", dst=VIP, port=80, timeout=TIMEOUT) == "z"
    # default group: the VIP is a member address too (ingress from it is allowed)
    assert z.sh(
        "python3", "-c",
        "import socket,sys; s=socket.socket(); s.settimeout(2); s.bind((sys.argv[1], 0));"
        " s.connect((sys.argv[2], 80)); print('connected')",
        VIP, c.v4, check=False,
    ).stdout.strip() == "connected"  # fmt: skip
