"""Built-in service functions: template bodies (``POST /v1/templates``) for instances that
sit in a chain.

Each function is a runc instance with two interfaces on an ``ovs`` instance network, both
plugged **isolated** (the template's ``isolated`` interface option: outside the learning
switch from the moment they exist, so a function that bridges its legs is never a loop; only
the chain's flows reach it). ``eth0`` is the ingress and ``eth1`` the egress of its port
pair: the switch ports to declare are the instance's ``host_ifname`` of each
(``GET /v1/instances/{name}``).

- :func:`counter`: transparent (bump in the wire). A Linux bridge between its legs; what it
  saw is the kernel's count of each leg (``/proc/net/dev`` inside it: ``eth0`` receives the
  requests, ``eth1`` the replies).
- :func:`tap`: a mirror's receiving end: one leg that takes the copies of a tap group
  (``tap_enabled``) and sends nothing on (its leg's kernel count is what it saw).
- :func:`firewall`: transparent, the same bridge with nftables rules (``bridge`` family,
  hook ``forward``) from the template's config; runs on the ``nft`` image
  (:mod:`fluidedge.instances.images.hostnft`).
- :func:`router`: routed (L3). IP forwarding between its legs, an address on each, a route
  table from its config; the chain hands it packets addressed to its ingress MAC (see
  ``docs/chains.md``, routed functions).

Everything is a busybox shell script: tiny and real, nothing but the kernel does the work.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from fluidedge.chains.errors import ChainUnprocessable, InvalidChain

BUSYBOX = "/bin/busybox"
READY = "/tmp/ready"  # noqa: S108 (inside the instance: its private tmpfs)
NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")

# A bridge between the two legs (STP off, the default: the legs are two ports of one chain hop,
# never a loop once isolated), no address: the function is invisible at L3.
_BRIDGE = (
    "set -e; "
    "brctl addbr br0; "
    "brctl addif br0 eth0; brctl addif br0 eth1; "
    "ip link set eth0 up; ip link set eth1 up; ip link set br0 up; "
)


def _check(name: str, network: str) -> None:
    for what, value in (("name", name), ("network", network)):
        if not NAME.fullmatch(value):
            raise InvalidChain(f"function template {what} {value!r} is not a valid name")


def _template(  # noqa: PLR0917 (one private builder)
    name: str,
    network: str,
    script: str,
    description: str,
    image: str = "busybox",
    legs: tuple[str, ...] = ("eth0", "eth1"),
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "description": description,
        "command": [BUSYBOX, "sh", "-c", f"{script}touch {READY}; exec sleep 2147483647"],
        "capabilities": ["CAP_NET_ADMIN"],
        "interfaces": [
            {"name": leg, "network": network, "port_security": False, "isolated": True}
            for leg in legs
        ],
        "readiness": {"kind": "file", "path": READY, "timeout_s": 30},
        "resources": {"cpus": 0.1, "memory_mb": 16, "pids": 8},
        "pool": {"size": 0},
    }


def counter(name: str, network: str) -> dict[str, Any]:
    """A transparent function that counts what crosses it (each leg's kernel counters)."""
    _check(name, network)
    return _template(name, network, _BRIDGE, "chain function: counter (bump in the wire)")


def tap(name: str, network: str) -> dict[str, Any]:
    """A passive mirror target: one isolated leg (``eth0``) that receives the copies a tap
    group (``tap_enabled``) hands it and sends nothing on; what it saw is its leg's kernel
    count and ``GET /v1/chains/port-pairs/{id}/packets``. Declare its pair one-armed."""
    _check(name, network)
    return _template(
        name,
        network,
        "set -e; ip link set eth0 up; ",
        "chain function: tap (a mirror's receiving end)",
        legs=("eth0",),
    )


# One nftables rule statement of the firewall's forward chain: no statement separators,
# comments or quoting (a rule is one line of the chain, never a way out of it). The API's
# schema states it for each rule; that braces nest (_sets_nest) it cannot state.
RULE_PATTERN = r"^[A-Za-z0-9 _.:/,{}!=<>-]{1,200}$"
_RULE = re.compile(RULE_PATTERN)
FIREWALL_IMAGE = "nft"
FIREWALL_TABLE = ("bridge", "fw")  # its nftables family and table (live rules: .firewall)


def _sets_nest(rule: str) -> bool:
    """Braces only as sets inside the rule (``{ 22, 23 }``): never one closing the chain."""
    depth = 0
    for char in rule:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def firewall_ruleset(rules: list[str]) -> str:
    """The vFirewall's nftables ruleset: a ``bridge`` table whose ``forward`` chain (every
    frame crossing the function's bridge, in both directions) applies ``rules`` in order and
    accepts the rest. Each rule is an nftables rule such as ``udp dport 7001 drop``; a
    ``counter`` in a rule counts what it matched (``nft list ruleset`` inside).

    A rule outside :data:`RULE_PATTERN` is malformed (:class:`InvalidChain`: the API's schema
    refuses it first); one within it whose braces do not nest is
    :class:`ChainUnprocessable`, the part of the rule a schema cannot state."""
    if len(rules) > 64:
        raise InvalidChain("firewall: at most 64 rules")
    for rule in rules:
        if not _RULE.fullmatch(rule):
            raise InvalidChain(f"firewall: rule {rule!r} is not one nftables rule statement")
        if not _sets_nest(rule):
            raise ChainUnprocessable(
                f"firewall: rule {rule!r} is not one nftables rule statement (its braces "
                "must open and close sets inside it)"
            )
    body = "".join(f"    {rule}\n" for rule in rules)
    family, table = FIREWALL_TABLE
    return (
        f"table {family} {table} {{\n"
        "  chain forward {\n"
        "    type filter hook forward priority 0; policy accept;\n"
        f"{body}"
        "  }\n"
        "}\n"
    )


def firewall(name: str, network: str, rules: list[str]) -> dict[str, Any]:
    """A transparent function that filters what crosses it with nftables (``rules``, see
    :func:`firewall_ruleset`); runs on the ``nft`` image."""
    _check(name, network)
    body = _template(
        name,
        network,
        _BRIDGE + "nft -f /.fe/firewall.nft; ",
        "chain function: vFirewall (nftables between its legs)",
        image=FIREWALL_IMAGE,
    )
    body["files"] = {"firewall.nft": firewall_ruleset(rules)}
    return body


# A routed function's legs resolve no neighbours (NOARP): what it routes out of a leg is
# addressed to that leg's own MAC, and the switch re-addresses it to the next hop (the
# chain knows where a packet goes next; the function only knows which leg).
_ROUTER = (
    "set -e; "
    "ip link set eth0 arp off; ip link set eth1 arp off; "
    "ip link set eth0 up; ip link set eth1 up; "
    "while read family prefix leg; do ip $family route add $prefix dev $leg; "
    "done < /.fe/routes; "
)


def router_routes(ingress: list[str], egress: list[str]) -> str:
    """The vRouter's route table file: one ``-4|-6 PREFIX LEG`` line per route; ``egress``
    prefixes (the chain's destination side) out of ``eth1``, ``ingress`` prefixes (the
    source side, for the replies) out of ``eth0``."""
    lines = []
    for leg, prefixes in (("eth0", ingress), ("eth1", egress)):
        for text in prefixes:
            try:
                prefix = ipaddress.ip_network(text, strict=False)
            except ValueError as exc:
                raise InvalidChain(f"router: route {text!r}: {exc}") from None
            lines.append(f"-{prefix.version} {prefix} {leg}\n")
    if len(lines) > 64:
        raise InvalidChain("router: at most 64 routes")
    return "".join(lines)


def router(name: str, network: str, ingress: list[str], egress: list[str]) -> dict[str, Any]:
    """A routed (L3) function: forwards between its legs by its route table (see
    :func:`router_routes`); declare its pair with ``kind: routed``."""
    _check(name, network)
    body = _template(name, network, _ROUTER, "chain function: vRouter (routes between its legs)")
    body["files"] = {"routes": router_routes(ingress, egress)}
    # Forwarding on, reverse-path filtering off (a leg has no address and the routes are
    # only the function's own): set by the runtime, the instance's /proc/sys is read-only.
    body["sysctls"] = {
        "net.ipv4.ip_forward": "1",
        "net.ipv6.conf.all.forwarding": "1",
        "net.ipv4.conf.all.rp_filter": "0",
        "net.ipv4.conf.default.rp_filter": "0",
    }
    return body
