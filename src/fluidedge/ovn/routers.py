"""Logical routers between ``ovn`` networks: the rows (pure) and their northbound I/O.

A router is one OVN ``Logical_Router`` with one router port per network it joins; the network's
logical switch gets the peer port (``type=router``, ``addresses=router``), so instances on
the network whose gateway is the router's address there reach the other networks. OVN routes
east-west traffic on the chassis where it enters (distributed: no gateway chassis, no hop
through a central node), so two instances on two nodes and two networks talk directly over
geneve. The NB is the router's only store (ADR 0004: network state lives in OVN's databases):
every node's API lists, creates and deletes the same routers, and nothing is kept per node.

Names: the logical router ``fe_r_<router>``, its port ``fe_lrp_<router>_<network>``, the
switch's peer ``fe_lsp_<router>_<network>``. Router and network names match
``[a-z][a-z0-9-]*`` (no ``_``), so the names are unambiguous, and they hold no ``.``, so they
never meet an instance's logical port (``<chassis>.<ifname>``). Every row carries
``external_ids:fluidedge-router=<router>`` (the port rows also ``fluidedge-network``). A router
port's MAC is derived from (router, network): locally administered, stable across restarts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

from fluidedge.ovn.errors import OvnConflict, OvnFailure, OvnInvalid, OvnNotFound
from fluidedge.ovn.nbctl import Nbctl, as_list

ROUTER_KEY = "fluidedge-router"
NETWORK_KEY = "fluidedge-network"
MAX_LEGS = 16
ROUTER_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
# an instance network's name (fluidedge.instances.models.NAME_PATTERN: this package sits below)
NETWORK_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
_PATTERNS = {"router": re.compile(ROUTER_NAME_PATTERN), "network": re.compile(NETWORK_NAME_PATTERN)}

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class Leg:
    """The router's address on one network (its port there)."""

    network: str
    address: IPInterface


@dataclass(frozen=True)
class Router:
    name: str
    legs: tuple[Leg, ...]

    def __post_init__(self) -> None:
        check_name("router", self.name)
        if not 1 <= len(self.legs) <= MAX_LEGS:
            raise OvnInvalid(f"router {self.name}: 1 to {MAX_LEGS} networks, not {len(self.legs)}")
        seen: set[str] = set()
        for leg in self.legs:
            check_name("network", leg.network)
            if leg.network in seen:
                raise OvnInvalid(f"router {self.name}: network {leg.network} appears twice")
            seen.add(leg.network)
            if leg.address.network.prefixlen == leg.address.max_prefixlen:
                raise OvnInvalid(
                    f"router {self.name}: address {leg.address} on {leg.network} needs the "
                    "network's prefix length (e.g. /24)"
                )

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "interfaces": [
                {
                    "network": leg.network,
                    "address": str(leg.address),
                    "mac": port_mac(self.name, leg.network),
                }
                for leg in self.legs
            ],
        }


def check_name(what: str, name: str) -> str:
    """``name`` if it is a valid ``router`` or ``network`` name; OvnInvalid otherwise."""
    pattern = _PATTERNS[what]
    if not isinstance(name, str) or not pattern.match(name):
        raise OvnInvalid(f"invalid {what} name {name!r}: {pattern.pattern.strip('^$')}")
    return name


def lr_name(router: str) -> str:
    return f"fe_r_{router}"


def lrp_name(router: str, network: str) -> str:
    return f"fe_lrp_{router}_{network}"


def lsp_name(router: str, network: str) -> str:
    return f"fe_lsp_{router}_{network}"


def port_mac(router: str, network: str) -> str:
    """A locally administered unicast MAC (02:...) from (router, network)."""
    digest = hashlib.sha256(f"{router}\0{network}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def create_commands(router: Router) -> list[list[str]]:
    """One transaction that makes ``router``: fails as a whole if it exists (``lr-add``
    without ``--may-exist``) or a network's switch is missing (``lsp-add`` on it)."""
    lr = lr_name(router.name)
    tag = f'external_ids:{ROUTER_KEY}="{router.name}"'
    commands: list[list[str]] = [["lr-add", lr], ["set", "Logical_Router", lr, tag]]
    for leg in router.legs:
        lrp, lsp = lrp_name(router.name, leg.network), lsp_name(router.name, leg.network)
        net_tag = f'external_ids:{NETWORK_KEY}="{leg.network}"'
        commands += [
            ["lrp-add", lr, lrp, port_mac(router.name, leg.network), str(leg.address)],
            ["set", "Logical_Router_Port", lrp, tag, net_tag],
            ["lsp-add", leg.network, lsp],
            ["lsp-set-type", lsp, "router"],
            ["lsp-set-addresses", lsp, "router"],
            ["lsp-set-options", lsp, f"router-port={lrp}"],
            ["set", "Logical_Switch_Port", lsp, tag, net_tag],
        ]
    return commands


def delete_commands(router: Router) -> list[list[str]]:
    """One transaction that removes the router and its ports on the switches."""
    commands = [
        ["--if-exists", "lsp-del", lsp_name(router.name, leg.network)] for leg in router.legs
    ]
    return [*commands, ["--if-exists", "lr-del", lr_name(router.name)]]


# -- I/O: the northbound database ----------------------------------------------------------


def read(nb: Nbctl) -> dict[str, Router]:
    """Every router fluidedge made, by name, from one consistent read of the NB."""
    routers, ports = nb.queries(
        [
            ("Logical_Router", ["name", "ports", "external_ids"], ()),
            ("Logical_Router_Port", ["_uuid", "networks", "external_ids"], ()),
        ]
    )
    by_uuid = {row["_uuid"]: row for row in ports}
    out: dict[str, Router] = {}
    for row in routers:
        name = row["external_ids"].get(ROUTER_KEY)
        if name is None:
            continue  # not ours (an operator's, or OpenStack's)
        legs = []
        for uuid in as_list(row["ports"]):
            port = by_uuid.get(uuid)
            if port is None:
                continue
            network = port["external_ids"].get(NETWORK_KEY)
            addresses = as_list(port["networks"])
            if network is None or not addresses:
                continue
            legs.append(Leg(network, ipaddress.ip_interface(addresses[0])))
        try:
            out[name] = Router(name, tuple(sorted(legs, key=lambda leg: leg.network)))
        except OvnInvalid:
            continue  # a router someone changed by hand into something we cannot show
    return out


def attached(nb: Nbctl, network: str) -> list[str]:
    """The routers with a port on ``network``."""
    return sorted(n for n, r in read(nb).items() if any(leg.network == network for leg in r.legs))


def create(nb: Nbctl, router: Router) -> None:
    """Make ``router`` (one transaction; ``--wait=hv``: routed when it returns)."""
    if router.name in read(nb):
        raise OvnConflict(f"router {router.name} exists")
    try:
        nb.transact(create_commands(router), wait="hv")
    except OvnFailure as exc:
        raise OvnFailure(f"router {router.name}: {exc}") from exc


def get(nb: Nbctl, name: str) -> Router:
    router = read(nb).get(name)
    if router is None:
        raise OvnNotFound(f"router {name} does not exist")
    return router


def delete(nb: Nbctl, name: str) -> None:
    """Remove router ``name`` (404 if there is none)."""
    nb.transact(delete_commands(get(nb, name)), wait="hv")
