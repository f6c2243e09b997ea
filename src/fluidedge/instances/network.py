"""Networks: Linux bridges or Open vSwitch bridges (optionally inside a network namespace)
and the shells' veths.

Why a Linux bridge and not OVS: the kernel forwards between ports without a userspace datapath
(this host has no OVS kernel module, so OVS would mean the slower netdev datapath for every
instance packet), a bridge takes a thousand ports, and stateful per-port filtering for the later
security-group work is available on it with nftables' ``bridge`` family + conntrack. A network
may live in a given namespace (``netns``) so that it can be, e.g., the lab's apps bridge where
the TOF's apps interface is: that is how an edge-app instance serves a TOF service.

A shell's interface is a veth pair created in the bridge's namespace with its peer created
directly inside the shell's network namespace (one netlink request), enslaved and set up during
the prepare phase; the execute phase only adds addresses (see :mod:`fluidedge.instances.nl`).

A network's ``driver`` picks the switch: ``linuxbridge`` (the default, above) or ``ovs``, a
bridge on fluidedge's own Open vSwitch (:mod:`fluidedge.ovs.bridges`: private ovsdb-server and
ovs-vswitchd under the state directory, userspace ``netdev`` datapath here), the seed's §6
design where security groups are OpenFlow tables with conntrack. On ``ovs`` the veth is the
same; its host end becomes an OVS port (external_ids name the network and the interface) and
TX checksum offload is turned off on both ends (the userspace datapath would forward TCP
segments with checksums never computed).

``ovn`` (only on a node whose config names OVN databases, ``instances.ovn``): the network is
an OVN logical switch of that name, shared by every node that declares it
(:mod:`fluidedge.ovn.networks`); the veth's host end goes into the node chassis' ``br-int``
(same offload rule) as a logical port bound on this chassis. Such a network lives in the
chassis' namespace.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from fluidedge.instances.errors import NetnsNotFound, NotABridge, RuntimeFailure
from fluidedge.instances.models import NetworkSpec
from fluidedge.instances.neigh import NeighbourFlusher
from fluidedge.linux import netns as netns_mod
from fluidedge.linux import tc
from fluidedge.linux.proc import CommandError
from fluidedge.ovn import networks as ovn_networks
from fluidedge.ovn import routers as ovn_routers
from fluidedge.ovn.errors import OvnError, OvnUnavailable
from fluidedge.ovn.node import OvnNode
from fluidedge.ovs import bridges as ovs_bridges
from fluidedge.ovs.errors import OvsError

log = logging.getLogger(__name__)

_handles: dict[str | None, Any] = {}
_identities: dict[str, tuple[int, int]] = {}  # the namespace each cached handle is in
_lock = threading.RLock()

# pyroute2 (>= 0.9) keeps a handle's socket transport per thread (``threading.local``) and its
# close() closes only the calling thread's: a handle shared by the prepare workers and the
# request threads leaked one transport per other thread, found by the garbage collector later.
# Every use of the cached handles therefore runs on one thread, which also closes them.
_THREAD = "fe-netlink"
_executor: ThreadPoolExecutor | None = None
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _on_netlink_thread(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """Run ``fn`` on the one thread that owns the cached pyroute2 handles."""

    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        if threading.current_thread().name.startswith(_THREAD):
            return fn(*args, **kwargs)
        global _executor  # noqa: PLW0603 (the module's one netlink thread)
        with _lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_THREAD)
            executor = _executor
        return executor.submit(fn, *args, **kwargs).result()

    return run


def _ipr(netns: str | None) -> Any:
    """A cached pyroute2 IPRoute bound to ``netns`` (``None`` = the daemon's namespace).

    A named namespace is never created here (pyroute2's default, ``O_CREAT``, made an empty
    namespace of the operator's name whenever a network in a namespace that was gone was
    used: a restart after a reboot did, and the operator's ``ip netns add`` then failed), and
    a handle is for the namespace the name holds *now*: one deleted and made again under the
    same name (``ip netns del``, ``ip netns add``) gets a new handle, where the cached one
    would keep working on the old namespace, which lives on while the socket holds it (one
    ``stat`` per call). NetnsNotFound when there is no such namespace.
    """
    from pyroute2 import IPRoute  # noqa: PLC0415 (heavy; only when a network is used)

    if netns is None:
        handle = _handles.get(None)
        if handle is None:
            handle = _handles[None] = IPRoute()
        return handle
    identity = _namespace_identity(netns)
    cached = _handles.get(netns)
    if cached is not None and (identity is None or _identities.get(netns) != identity):
        _handles.pop(netns, None)
        _identities.pop(netns, None)
        with contextlib.suppress(Exception):
            cached.close()
        cached = None
    if identity is None:
        raise NetnsNotFound(f"netns: network namespace {netns!r} does not exist")
    if cached is not None:
        return cached
    try:
        # pyroute2 >= 0.9 opens its socket lazily from its own event-loop thread, so entering
        # the namespace around the constructor is not enough: let pyroute2 do the setns.
        handle = IPRoute(netns=netns, flags=0)
    except FileNotFoundError as exc:
        raise NetnsNotFound(f"netns: network namespace {netns!r} does not exist") from exc
    _handles[netns] = handle
    _identities[netns] = identity
    return handle


def _namespace_identity(netns: str) -> tuple[int, int] | None:
    """The namespace a name holds (its nsfs inode), None if the name holds none."""
    try:
        found = os.stat(netns_mod.NETNS_DIR / netns)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def use_state_dir(
    state_dir: Path, ovs_datapath: str = "netdev", ovn: OvnNode | None = None
) -> None:
    """Where ``ovs`` networks keep their switches (``<state_dir>/ovs``), and their datapath;
    the node's OVN config (``None``: no ``ovn`` networks here)."""
    try:
        ovs_bridges.configure(state_dir, ovs_datapath)
    except OvsError as exc:
        raise RuntimeFailure(f"ovs: {exc}") from exc
    ovn_networks.configure(state_dir, ovn)


def _close_all() -> None:
    for handle in _handles.values():
        with contextlib.suppress(Exception):
            handle.close()
    _handles.clear()
    _identities.clear()


# The networks' neighbour tables, one netlink socket per network (see fluidedge.instances.neigh).
_neighbours = NeighbourFlusher()


def forget_neighbours(spec: NetworkSpec, addresses: list[str]) -> int:
    """Delete the network-side neighbour entries of ``addresses`` (``ip/prefix``), which a new
    instance now holds: another instance may have held them a moment ago with another MAC.
    Returns how many entries there were. An ``ovn`` network has no kernel bridge of its own
    here (its logical router resolves addresses: OVN updates its bindings itself), nor has an
    ``ovs`` bridge whose datapath device lives elsewhere (no such link: nothing to forget).
    Never fails the creation: an entry left behind only delays the first packets until it
    ages out, which is logged."""
    if spec.driver == "ovn":
        return 0
    flushed = 0
    for text in addresses:
        address = text.split("/", 1)[0]
        try:
            flushed += _neighbours.flush(spec.netns, spec.bridge, address)
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):  # no such bridge or namespace here
                return flushed
            log.warning("network %s: neighbour entry of %s kept: %s", spec.name, address, exc)
    return flushed


def close_handles() -> None:
    """Close the cached handles on their thread, then stop that thread (a later use starts
    another)."""
    global _executor
    _neighbours.close()
    with _lock:
        executor, _executor = _executor, None
    if executor is not None:
        executor.submit(_close_all).result()
        executor.shutdown(wait=True)
    else:
        _close_all()


def _index(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


@_on_netlink_thread
def ensure_bridge(spec: NetworkSpec) -> bool:
    """Create the bridge if missing and set it up; True if it is the network's own (created
    now, or earlier: it carries the network's mark, :func:`bridge_mark`), False if adopted.

    An existing interface of that name is adopted only if it is a bridge: anything else (a
    veth, a dummy...) is refused before it is touched, since every instance plugged into it
    would fail later.
    """
    if spec.netns is not None and not netns_mod.exists(spec.netns):
        raise NetnsNotFound(f"netns: network namespace {spec.netns!r} does not exist")
    if spec.driver == "ovs":
        return _ensure_ovs_bridge(spec)
    if spec.driver == "ovn":
        try:
            return ovn_networks.ensure_switch(spec.name, spec.netns)
        except OvnUnavailable:
            raise  # a 409: the node has no OVN, or the network is not where its chassis is
        except OvnError as exc:
            raise RuntimeFailure(f"network {spec.name}: ovn: {exc}") from exc
    with _lock:
        try:
            ipr = _ipr(spec.netns)
            index = _index(ipr, spec.bridge)
            if index is None:
                index = _add_bridge(ipr, spec)
                own = True
            else:
                link = ipr.get_links(index)[0]
                kind = link.get(("linkinfo", "kind"))
                own = _marked(link, spec)
                if kind != "bridge":
                    where = f" in namespace {spec.netns}" if spec.netns else ""
                    raise NotABridge(
                        f"bridge: interface {spec.bridge}{where} exists and is "
                        f"{'a ' + str(kind) if kind else 'not a bridge'}: not adopted"
                    )
            ipr.link("set", index=index, state="up")
            return own
        except (RuntimeFailure, NotABridge):
            raise
        except Exception as exc:
            raise RuntimeFailure(f"network {spec.name}: bridge {spec.bridge}: {exc}") from exc


def _add_bridge(ipr: Any, spec: NetworkSpec) -> int | None:
    """Create the network's Linux bridge with its own MAC; its index (lock held).

    Its own MAC, set: a bridge without one takes its lowest port's, which changes as
    instances come and go, and every change moves the gateway's MAC under the instances
    (their traffic to it goes nowhere until their ARP entries age out) and drops the bridge's
    neighbour table. Its mark (:func:`bridge_mark`), set: what says it may be deleted."""
    ipr.link("add", ifname=spec.bridge, kind="bridge", address=bridge_mac(spec))
    index = _index(ipr, spec.bridge)
    ipr.link("set", index=index, ifalias=bridge_mark(spec))
    return index


def bridge_mark(spec: NetworkSpec) -> str:
    """The alias (``IFLA_IFALIAS``, ``ip link`` shows it) of a Linux bridge fluidedge made
    for network ``spec``: the device, not the store, says the bridge is the network's to
    delete (a damaged row's ``managed`` flag or bridge name must not take away the host's
    bridge, or another network's)."""
    return f"fluidedge network {spec.name}"


def _marked(link: Any, spec: NetworkSpec) -> bool:
    """Whether netlink ``link`` (a bridge) carries network ``spec``'s mark."""
    return bool(link.get("IFLA_IFALIAS") == bridge_mark(spec))


@_on_netlink_thread
def _ensure_ovs_bridge(spec: NetworkSpec) -> bool:
    """The ``ovs`` driver's bridge: refuse a same-named interface that is not ours."""
    with _lock:
        try:
            # from the switch's database: a switch that died while no daemon ran leaves its
            # bridges' interfaces behind, which are still ours
            known = spec.bridge in ovs_bridges.declared_bridges(spec.netns)
            if not known and _index(_ipr(spec.netns), spec.bridge) is not None:
                where = f" in namespace {spec.netns}" if spec.netns else ""
                raise NotABridge(
                    f"bridge: interface {spec.bridge}{where} exists and is not a bridge of "
                    "fluidedge's Open vSwitch: not adopted"
                )
            return ovs_bridges.ensure_bridge(spec.bridge, spec.netns, spec.name, bridge_mac(spec))
        except NotABridge:
            raise
        except Exception as exc:
            raise RuntimeFailure(f"network {spec.name}: ovs bridge {spec.bridge}: {exc}") from exc


def routers_on(spec: NetworkSpec) -> list[str]:
    """The logical routers attached to an ``ovn`` network (none for the other drivers)."""
    if spec.driver != "ovn" or not ovn_networks.configured():
        return []
    try:
        return ovn_routers.attached(ovn_networks.nbctl(), spec.name)
    except OvnError as exc:
        raise RuntimeFailure(f"network {spec.name}: ovn: {exc}") from exc


@_on_netlink_thread
def delete_bridge(spec: NetworkSpec) -> None:
    """Delete the network's bridge (``ovs``: and its switch with the last one; ``ovn``: its
    logical switch). A namespace deleted under the network took a Linux bridge with it, but
    not an ``ovs`` switch whose daemons still run there (a namespace lives on while a process
    is in it: ours are, unreachable by name, reached through their sockets under the state
    directory), nor an OVN logical switch (a row of the northbound database)."""
    with _lock:
        gone = spec.netns is not None and not netns_mod.exists(spec.netns)
        if gone and spec.driver == "linuxbridge":
            return
        if spec.driver == "ovs":
            try:
                if not ovs_bridges.delete_bridge(spec.bridge, spec.netns, spec.name):
                    _left(spec, f"its {ovs_bridges.NETWORK_ID} does not name the network")
            except OvsError as exc:
                raise RuntimeFailure(f"network {spec.name}: delete {spec.bridge}: {exc}") from exc
            return
        if spec.driver == "ovn":
            try:
                ovn_networks.delete_switch(spec.name)
            except OvnError as exc:
                raise RuntimeFailure(f"network {spec.name}: ovn: {exc}") from exc
            return
        try:
            ipr = _ipr(spec.netns)
            index = _index(ipr, spec.bridge)
            if index is None:
                return
            link = ipr.get_links(index)[0]
            if not _marked(link, spec):
                alias = link.get("IFLA_IFALIAS")
                _left(spec, f"its alias is {alias!r}, not {bridge_mark(spec)!r}")
                return
            ipr.link("del", index=index)
        except Exception as exc:
            raise RuntimeFailure(f"network {spec.name}: delete {spec.bridge}: {exc}") from exc


def _left(spec: NetworkSpec, why: str) -> None:
    log.warning(
        "instances: network %s: bridge %s is not marked as the network's (%s): left in place",
        spec.name,
        spec.bridge,
        why,
        extra={"part": "instances", "event": "bridge_left", "ids": spec.name},
    )


@_on_netlink_thread
def revive_bridge(spec: NetworkSpec, ports: Sequence[tuple[str, bool]]) -> int | None:
    """A ``linuxbridge`` network's bridge deleted from outside (``ip link del``, a network
    tool that removes bridges it does not know) is created again, with its MAC (the
    instances' neighbour entries for it stay right), and ``ports`` (host end, isolated), the
    veths of ours on it, are its ports again: an isolated one down until it is isolated
    again (:func:`_plug_isolated`, its filters replaced in place). Deleting a bridge leaves
    its ports' veths alive but attached to nothing: every instance on the network is cut off
    until then. None when the bridge is there (one netlink get), else how many ports came
    back (the rest are gone with their instance)."""
    with _lock:
        if spec.driver != "linuxbridge" or (
            spec.netns is not None and not netns_mod.exists(spec.netns)
        ):
            return None
        try:
            ipr = _ipr(spec.netns)
            if _index(ipr, spec.bridge) is not None:
                return None
            bridge = _add_bridge(ipr, spec)
            ipr.link("set", index=bridge, state="up")
            back = 0
            for host_ifname, isolated in ports:
                index = _index(ipr, host_ifname)
                if index is None:
                    continue
                if isolated:
                    ipr.link("set", index=index, state="down")
                    try:  # its filters survived: replaced in place, under their own handle
                        filters = tc.show_filters(spec.netns, host_ifname, "ingress")
                    except CommandError:
                        filters = ""
                    handle = tc.isolation(filters) or tc.PLUGGED
                    _plug_isolated(ipr, spec, host_ifname, index, bridge, handle=handle)
                else:
                    ipr.link("set", index=index, master=bridge, state="up")
                back += 1
        except RuntimeFailure:
            raise
        except Exception as exc:
            raise RuntimeFailure(f"network {spec.name}: bridge {spec.bridge}: {exc}") from exc
    log.error(
        "instances: network %s: bridge %s was deleted from outside; created again with %d port(s)",
        spec.name,
        spec.bridge,
        back,
        extra={"part": "instances", "event": "bridge_revived", "ids": spec.name},
    )
    return back


def bridge_mac(spec: NetworkSpec) -> str:
    """The MAC a bridge fluidedge creates gets: locally administered, unicast, derived from its
    namespace and name (stable across restarts: instances' ARP entries stay right)."""
    digest = hashlib.sha256(f"bridge\0{spec.netns or ''}\0{spec.bridge}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def mac_for(host_ifname: str) -> str:
    """The MAC of the instance end of veth ``host_ifname``: locally administered, unicast,
    derived from the (unique) host-end name, so the security-group part knows the address a
    port may send from without asking the instance's namespace."""
    digest = hashlib.sha256(host_ifname.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def _silence(netns: str | None, ifname: str) -> None:
    """No IPv6 on the switch-side end of a veth (``disable_ipv6``, before it goes up), on
    every driver: that end is a switch port, yet its kernel would give it a link-local address
    and send its own neighbour solicitations (DAD), MLD reports and router solicitations
    straight to the instance (what a host end transmits goes to its peer, not into the
    switch). An instance sees only what its network sends it; a service function only what
    its chain sends it. A write to ``/proc/sys`` (from a thread in ``netns``: the sysctl tree
    is the opener's namespace's), no subprocess on the plug path."""
    path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"

    def write() -> None:
        with contextlib.suppress(FileNotFoundError):  # a kernel without IPv6: nothing to do
            Path(path).write_text("1\n")

    netns_mod.call_in_netns(netns, write)


@_on_netlink_thread
def plug(
    spec: NetworkSpec,
    host_ifname: str,
    container_ifname: str,
    pid: int,
    *,
    isolated: bool = False,
    netns_path: str | None = None,
    again: bool = False,
    number: int | None = None,
) -> int:
    """Create a veth: ``host_ifname`` on the bridge, ``container_ifname`` in ``pid``'s netns
    (or the one at ``netns_path``, a path any process can open) with the MAC :func:`mac_for`
    gives. ``isolated`` (the template's interface option; not on ``ovn``): the port is plugged
    outside the learning switch, see :func:`fluidedge.ovs.bridges.add_port` and
    :func:`_plug_isolated`. ``again``: the veth was deleted from outside; a switch port still
    named after it goes first (:func:`fluidedge.ovs.bridges.take_port`), and the new one gets
    OpenFlow port ``number`` (the one it had: the security groups' and chains' flows name it;
    the kernel datapath forgets it with the device). Returns the OpenFlow port number on an
    ``ovs`` network, else 0."""
    with _lock:
        if again and spec.driver != "linuxbridge":
            try:
                if spec.driver == "ovs":
                    had = ovs_bridges.take_port(spec.netns, host_ifname)
                    number = number or had
                else:  # its logical port stays: its security groups' port groups name it
                    ovn_networks.unbind(host_ifname)
            except (OvsError, OvnError) as exc:
                raise RuntimeFailure(f"plug {host_ifname} again: {exc}") from exc
        try:
            ipr = _ipr(spec.netns)
            bridge = _index(ipr, spec.bridge) if spec.driver != "ovn" else 0
            if bridge is None:
                raise RuntimeFailure(f"network {spec.name}: bridge {spec.bridge} is gone")
            netns_path = netns_path or f"/proc/{pid}/ns/net"
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link(
                    "add",
                    ifname=host_ifname,
                    kind="veth",
                    peer={
                        "ifname": container_ifname,
                        "net_ns_fd": fd,
                        "address": mac_for(host_ifname),
                    },
                )
            finally:
                os.close(fd)
            index = _index(ipr, host_ifname)
            _silence(spec.netns, host_ifname)
            if spec.driver == "ovn":
                ipr.link("set", index=index, state="up")
                ovs_bridges.disable_tx_offload(None, spec.netns, host_ifname)
                ovs_bridges.disable_tx_offload(netns_path, None, container_ifname)
                ovn_networks.plug(spec.name, host_ifname, mac_for(host_ifname))
            elif spec.driver == "ovs":
                ipr.link("set", index=index, state="up")
                ovs_bridges.disable_tx_offload(None, spec.netns, host_ifname)
                ovs_bridges.disable_tx_offload(netns_path, None, container_ifname)
                return ovs_bridges.add_port(
                    spec.bridge,
                    spec.netns,
                    host_ifname,
                    {
                        "fluidedge-network": spec.name,
                        "fluidedge-iface": container_ifname,
                        ovs_bridges.ATTACHED_MAC: mac_for(host_ifname),
                    },
                    isolated=isolated,
                    number=number,
                )
            elif isolated:
                _plug_isolated(ipr, spec, host_ifname, index, bridge)
            else:
                ipr.link("set", index=index, master=bridge, state="up")
        except RuntimeFailure:
            raise
        except Exception as exc:
            raise RuntimeFailure(f"plug {host_ifname} into {spec.bridge}: {exc}") from exc
        return 0


def _plug_isolated(
    ipr: Any,
    spec: NetworkSpec,
    host_ifname: str,
    index: int | None,
    bridge: int | None,
    *,
    handle: str = tc.PLUGGED,
) -> None:
    """A Linux bridge port outside the bridge's forwarding (a service function's leg, which
    bridges its two legs: a loop until a chain steers it): everything it sends is dropped at
    its ingress before the bridge sees it, nothing reaches it but what the chains' program
    steers there (:func:`fluidedge.linux.tc.isolate`), and the bridge neither learns from it
    nor floods to it. Done while the port is down: no frame crosses before."""
    ipr.link("set", index=index, master=bridge)
    try:
        tc.isolate(spec.netns, host_ifname, handle)
    except CommandError as exc:
        raise RuntimeFailure(f"network {spec.name}: isolating {host_ifname}: {exc}") from exc
    ipr.link("set", index=index, state="up")


@_on_netlink_thread
def unplug(netns: str | None, host_ifname: str) -> None:
    """Delete a shell's veth by its host end (the peer goes with it); absent is fine.

    If our Open vSwitch in that namespace has a port of that name, it goes first (a port left
    behind would be reopened by every later veth of the same name)."""
    with _lock:
        if netns is not None and not netns_mod.exists(netns):
            return
        try:
            ovs_bridges.del_port(netns, host_ifname)
            ovn_networks.unplug(host_ifname)
        except (OvsError, OvnError) as exc:
            raise RuntimeFailure(f"unplug {host_ifname}: {exc}") from exc
        try:
            ipr = _ipr(netns)
            index = _index(ipr, host_ifname)
            if index is not None:
                ipr.link("del", index=index)
        except Exception as exc:
            # The veth may vanish between the lookup and the delete: its peer died with the
            # container's network namespace, which takes the pair with it. Gone is gone.
            if getattr(exc, "code", None) == errno.ENODEV:
                return
            raise RuntimeFailure(f"unplug {host_ifname}: {exc}") from exc


def revive_chassis() -> bool:
    """This node's OVN chassis started again if a daemon of it died (see
    :func:`fluidedge.ovn.networks.revive`, which logs it); True if it was."""
    try:
        return ovn_networks.revive()
    except (OvnError, OvsError) as exc:
        raise RuntimeFailure(f"ovn: the restart of this node's chassis: {exc}") from exc


def bridge_missing(spec: NetworkSpec) -> bool:
    """A ``linuxbridge`` network's bridge is gone while its namespace is there (what
    :func:`revive_bridge` repairs); one netlink get."""
    if spec.driver != "linuxbridge":
        return False
    if spec.netns is not None and not netns_mod.exists(spec.netns):
        return False
    return not link_exists(spec.netns, spec.bridge)


@_on_netlink_thread
def link_exists(netns: str | None, ifname: str) -> bool:
    with _lock:
        if netns is not None and not netns_mod.exists(netns):
            return False
        return _index(_ipr(netns), ifname) is not None


@_on_netlink_thread
def bridge_ports(spec: NetworkSpec) -> list[str]:
    """Names of the links plugged into the network's bridge (empty if it does not exist)."""
    with _lock:
        if spec.netns is not None and not netns_mod.exists(spec.netns):
            return []
        if spec.driver == "ovn":
            try:
                return ovn_networks.ports(spec.name)
            except OvnError as exc:
                raise RuntimeFailure(f"network {spec.name}: ovn ports: {exc}") from exc
        if spec.driver == "ovs":
            try:
                return ovs_bridges.ports(spec.bridge, spec.netns)
            except OvsError as exc:
                raise RuntimeFailure(f"network {spec.name}: ports of {spec.bridge}: {exc}") from exc
        try:
            ipr = _ipr(spec.netns)
            bridge = _index(ipr, spec.bridge)
            if bridge is None:
                return []
            return [
                str(link.get_attr("IFLA_IFNAME"))
                for link in ipr.get_links()
                if link.get_attr("IFLA_MASTER") == bridge
            ]
        except Exception as exc:
            raise RuntimeFailure(f"network {spec.name}: ports of {spec.bridge}: {exc}") from exc
