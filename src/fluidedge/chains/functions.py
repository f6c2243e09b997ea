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
- :func:`firewall`: transparent, the same bridge with nftables rules (``bridge`` family,
  hook ``forward``) from the template's config; runs on the ``nft`` image
  (:mod:`fluidedge.instances.images.hostnft`).
- :func:`router`: routed (L3). IP forwarding between its legs, an address on each, a route
  table from its config; the chain hands it packets addressed to its ingress MAC (see
  ``docs/chains.md``, routed functions).

Everything is a busybox shell script: tiny and real, nothing but the kernel does the work.
"""

from __future__ import annotations

import re
from typing import Any

from fluidedge.chains.errors import InvalidChain

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


def _template(
    name: str, network: str, script: str, description: str, image: str = "busybox"
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "description": description,
        "command": [BUSYBOX, "sh", "-c", f"{script}touch {READY}; exec sleep 2147483647"],
        "capabilities": ["CAP_NET_ADMIN"],
        "interfaces": [
            {"name": leg, "network": network, "port_security": False, "isolated": True}
            for leg in ("eth0", "eth1")
        ],
        "readiness": {"kind": "file", "path": READY, "timeout_s": 30},
        "resources": {"cpus": 0.1, "memory_mb": 16, "pids": 8},
        "pool": {"size": 0},
    }


def counter(name: str, network: str) -> dict[str, Any]:
    """A transparent function that counts what crosses it (each leg's kernel counters)."""
    _check(name, network)
    return _template(name, network, _BRIDGE, "chain function: counter (bump in the wire)")
