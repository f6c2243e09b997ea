"""A TOF service as a chain's entrance (§4.3.2.2): offloaded UE traffic through a chain.

The TOF decapsulates a service's uplink, rewrites serviceIP to applicationIP and writes the
packet into its apps TUN; the kernel of the TOF's namespace routes it out of the apps
interface. When that interface is a veth whose other end is a port of an ``ovs`` instance
network, the TOF is one more port of the network, and a flow classifier whose
``logical_source_port`` is that port and whose ``tof_service`` names the service takes the
service's offloaded traffic: its destination prefix is the address the decapsulated packets
carry (the applicationIP; an on-demand service's address pool). The app's replies (source:
the app) are classified on the app's port by the reversed match, cross the chain backwards
and are delivered to the TOF's port, whose kernel routes them into the TUN; the TOF
encapsulates them toward the eNB.

WHY a name rather than an address: the classifier follows the service (a PUT moving it to
another app moves the chain's match with it, at the next poll), and the operator says what
is meant. :func:`resolve` is pure: the declared state and the TOF's services give the state
the compiler sees. A classifier naming a service that does not exist (yet), or whose family
differs, takes no traffic: it is left out of its chain, as one whose ports are absent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Protocol

from fluidedge.chains.model import ChainState
from fluidedge.core.fields import IPNetwork


class _OnDemand(Protocol):
    @property
    def address_pool(self) -> str: ...


class TofService(Protocol):
    """What is read of a TOF service (:class:`fluidedge.tof.models.Service`; tof and chains
    are peer packages, so its shape rather than its import)."""

    @property
    def name(self) -> str: ...

    @property
    def application_ip(self) -> str: ...

    @property
    def ondemand(self) -> _OnDemand | None: ...


def service_prefixes(services: Iterable[TofService]) -> dict[str, IPNetwork]:
    """Service name -> the destination its offloaded packets carry on the apps side."""
    out: dict[str, IPNetwork] = {}
    for s in services:
        if s.ondemand is not None:
            out[s.name] = ipaddress.ip_network(s.ondemand.address_pool, strict=False)
        else:
            out[s.name] = ipaddress.ip_network(s.application_ip)
    return out


def uses_tof(state: ChainState) -> bool:
    return any(c.tof_service is not None for c in state.classifiers.values())


def resolve(state: ChainState, services: Mapping[str, IPNetwork]) -> ChainState:
    """``state`` with each classifier naming a TOF service made concrete (its destination
    prefix the service's, ``tof_service`` cleared), or left out when the service is absent
    or of the other family. Pure."""
    if not uses_tof(state):
        return state
    classifiers = {}
    dropped: set[str] = set()
    for cid, c in state.classifiers.items():
        if c.tof_service is None:
            classifiers[cid] = c
            continue
        prefix = services.get(c.tof_service)
        if prefix is None or (prefix.version == 4) != (c.ethertype == "IPv4"):
            dropped.add(cid)
            continue
        classifiers[cid] = replace(c, tof_service=None, destination_ip_prefix=prefix)
    chains = {
        key: replace(
            chain, flow_classifiers=tuple(f for f in chain.flow_classifiers if f not in dropped)
        )
        for key, chain in state.chains.items()
    }
    return replace(state, classifiers=classifiers, chains=chains)
