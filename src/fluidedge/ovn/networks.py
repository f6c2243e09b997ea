"""What the instance networks' ``ovn`` driver calls: logical switches and ports, this node's
chassis.

A network is a logical switch named after the network (the same name on every node is the
same switch: that is how a network spans hosts); an instance interface is a logical port
``<chassis>.<host ifname>`` (unique across nodes) with the interface's MAC as its address,
bound here by ``external_ids:iface-id`` on the chassis' ``br-int``. The chassis starts with
the node's first ``ovn`` network and stops (its directory removed) when the last goes, as the
``ovs`` driver's switches do. Security groups on these ports are the ``ovn`` renderer's job
(:mod:`fluidedge.secgroups.ovn_driver`).

A *host port* (:func:`plug_host`) puts a device of the chassis namespace itself on a network:
a veth whose one end (``ifname``, carrying the host's address there, e.g. the TOF's apps
gateway) stays in the namespace and whose other end is a logical port on ``br-int``. That is
how the TOF on one node reaches apps on others through the OVN apps network.

The registry is per process (the daemon has one state directory); :func:`configure` sets it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

from fluidedge.linux.netns import describe
from fluidedge.ovn.chassis import Chassis, check_iface
from fluidedge.ovn.errors import OvnError, OvnFailure, OvnUnavailable, OvnUnreachable
from fluidedge.ovn.nbctl import Nbctl
from fluidedge.ovn.node import OvnNode
from fluidedge.ovs.bridges import disable_tx_offload
from fluidedge.ovs.errors import OvsError

NETWORK_KEY = "fluidedge-network"

log = logging.getLogger(__name__)

_lock = threading.RLock()
_node: OvnNode | None = None
_root: Path | None = None
_chassis: Chassis | None = None
_local: set[str] = set()
_hosts: dict[str, str] = {}  # host ports here: ifname -> network


def configure(state_dir: Path, node: OvnNode | None) -> None:
    """This process's node config (``None``: no OVN) and where its chassis lives."""
    global _node, _root, _chassis
    with _lock:
        _node, _root, _chassis = node, state_dir / "ovn", None


def configured() -> bool:
    return _node is not None


def _require() -> OvnNode:
    if _node is None:
        raise OvnUnavailable("ovn: this node has no OVN configuration (instances.ovn)")
    return _node


def nbctl() -> Nbctl:
    return Nbctl(_require().nb)


def northbound_absent() -> str | None:
    """Why this node's northbound database cannot be reached now (None: it can, or this node
    has no OVN config, which the next call says)."""
    if _node is None:
        return None
    try:
        Nbctl(_node.nb).live_remote()
    except OvnUnreachable as exc:
        return str(exc)
    return None


def chassis(*, start: bool = False) -> Chassis:
    """This node's chassis (started or adopted if ``start``)."""
    global _chassis  # noqa: PLW0603
    with _lock:
        node = _require()
        if _chassis is None:
            root = _root if _root is not None else Path("/var/lib/fluidedge/ovn")
            _chassis = Chassis(
                root / "chassis",
                node.chassis,
                node.sb,
                node.encap,
                netns=node.netns,
                underlay=node.underlay,
                datapath=node.datapath,
            )
        if start:
            _chassis.start()
        return _chassis


def is_ovn_network(network: str) -> bool:
    """Whether ``network`` is one of this node's ``ovn`` networks."""
    with _lock:
        return network in _local


def lsp_name(host_ifname: str) -> str:
    return f"{_require().chassis}.{check_iface(host_ifname)}"


def node_name() -> str:
    """This node's chassis name: who owns its rows in the northbound database."""
    return _require().chassis


def is_local_lsp(lsp: str) -> bool:
    """Whether the logical port ``lsp`` is one of this node's (named ``<chassis>.<ifname>``)."""
    return lsp.startswith(f"{_require().chassis}.")


def ensure_switch(network: str, netns: str | None) -> bool:
    """The network's logical switch (created if missing) and the chassis; True if created."""
    with _lock:
        node = _require()
        if netns != node.netns:
            raise OvnUnavailable(
                f"ovn: network {network} must live in the chassis' namespace "
                f"({describe(node.netns)}), not {describe(netns)}"
            )
        chassis(start=True)
        _local.add(network)
        nb = nbctl()
        exists = nb.run("--bare", "--columns=_uuid", "find", "Logical_Switch", f"name={network}")
        if exists.strip():
            return False
        nb.transact(
            [
                ["--may-exist", "ls-add", network],
                ["set", "Logical_Switch", network, f'external_ids:{NETWORK_KEY}="{network}"'],
            ]
        )
        return True


def plug(network: str, device: str, mac: str) -> str:
    """Logical port for ``device`` (already in the chassis namespace) on the network's
    switch, bound here; returns the port's name."""
    with _lock:
        lsp = lsp_name(device)
        nbctl().transact(
            [["--may-exist", "lsp-add", network, lsp], ["lsp-set-addresses", lsp, mac]]
        )
        chassis().plug(device, lsp, mac, {NETWORK_KEY: network})
        return lsp


def unplug(device: str) -> None:
    """Remove the logical port and br-int port of ``device``; absent is fine."""
    with _lock:
        if _node is None or _chassis is None or not _chassis.running():
            return
        nbctl().run("--if-exists", "lsp-del", lsp_name(device))
        _chassis.unplug(device)


def revive() -> bool:
    """This node's chassis, started again if one of its daemons died under us (an OOM kill, a
    crash, a stray ``kill``) while an ``ovn`` network is here; True if it was.

    Its switch forwards nothing without ``ovs-vswitchd`` (every instance on the node's ``ovn``
    networks is cut off), and without ``ovn-controller`` nothing new is bound or programmed.
    The same with every daemon alive but the tunnels' side changed from outside (``br-phy``
    deleted or down, its encap address flushed, the underlay down): no geneve packet leaves
    or arrives, so it is set up again (:meth:`fluidedge.ovn.chassis.Chassis.tunnel_lost`).
    The instances part calls it every ``switch_check_interval_s``: three pidfile reads and one
    ``ip -j addr`` in the chassis namespace. The
    restarted switch reads its bridges and ports from its database and ``ovn-controller``
    programs ``br-int`` again from the southbound database (the logical ports, their ACLs: no
    flow of ours to put back)."""
    with _lock:
        if _chassis is None or not _local:
            return False
        dead = _chassis.dead()
        if not dead:
            lost = _chassis.tunnel_lost()
            if not lost:
                return False
            # br-phy deleted, its address flushed, the underlay down: set up again as at start
            # (start adopts the running daemons; its steps are idempotent)
            log.error(
                "ovn: chassis %s: %s (changed from outside: no tunnel to the other nodes); "
                "set up again",
                _chassis.name,
                "; ".join(lost),
                extra={"part": "ovn", "event": "chassis_tunnel_lost"},
            )
            _chassis.start()
            return True
        log.error(
            "ovn: %s of chassis %s died; restarting it (its instances' ports forward nothing "
            "until it is back)",
            " and ".join(dead),
            _chassis.name,
            extra={"part": "ovn", "event": "chassis_died"},
        )
        _chassis.start()
        log.warning("ovn: chassis %s is whole again", _chassis.name)
        return True


def unbind(device: str) -> None:
    """Remove the br-int port of ``device`` and keep its logical port (its addresses, and its
    place in the security groups' port groups), for a device deleted from outside that is
    plugged again (:func:`plug` binds the new one); absent is fine."""
    with _lock:
        if _node is None or _chassis is None or not _chassis.running():
            return
        _chassis.unplug(device)


def ports(network: str) -> list[str]:
    """Devices on br-int here that belong to ``network``."""
    with _lock:
        if _chassis is None or not _chassis.running():
            return []
        text = _chassis.vsctl("--format=json", "--columns=name,external_ids", "list", "Interface")
        out = []
        for name, ids in json.loads(text).get("data", []):
            pairs = dict(ids[1]) if isinstance(ids, list) and ids and ids[0] == "map" else {}
            if pairs.get(NETWORK_KEY) == network:
                out.append(str(name))
        return sorted(out)


def delete_switch(network: str) -> None:
    """Forget the network here; its logical switch goes when no node has a port on it. The
    chassis stops (directory removed) when its last local network goes."""
    with _lock:
        _local.discard(network)
        try:
            nb = nbctl()
            rows = nb.run("--bare", "--columns=ports", "find", "Logical_Switch", f"name={network}")
            if not rows.strip():
                nb.run("--if-exists", "ls-del", network)
        finally:  # the central may be unreachable: the local chassis goes all the same
            if not _local and not _hosts and _chassis is not None:
                _chassis.destroy()


def host_peer(ifname: str) -> str:
    """The br-int end of host port ``ifname``."""
    return check_iface(f"{check_iface(ifname)[:12]}-ls")


def host_mac(ifname: str) -> str:
    """A stable, locally administered MAC for host port ``ifname`` of this chassis."""
    digest = hashlib.sha256(f"{_require().chassis}/{ifname}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def plug_host(network: str, ifname: str, netns: str | None) -> str:
    """Host port ``ifname`` on ``network``'s logical switch (made if missing), bound on this
    chassis (started if needed); ``netns`` must be the chassis' namespace. The veth is made
    afresh (an old one of that name is replaced). Returns the logical port's name."""
    with _lock:
        node = _require()
        if netns != node.netns:
            raise OvnUnavailable(
                f"ovn: host port {ifname} must live in the chassis' namespace "
                f"({describe(node.netns)}), not {describe(netns)}"
            )
        here = chassis(start=True)
        peer = host_peer(ifname)
        _hosts[ifname] = network
        nb = nbctl()
        nb.transact(
            [
                ["--may-exist", "ls-add", network],
                ["set", "Logical_Switch", network, f'external_ids:{NETWORK_KEY}="{network}"'],
            ]
        )
        here.unplug(peer)
        if _link_exists(here, ifname):
            here.ip("link", "del", ifname)
        mac = host_mac(ifname)
        here.ip("link", "add", ifname, "address", mac, "type", "veth", "peer", "name", peer)
        for device in (ifname, peer):
            try:
                disable_tx_offload(None, node.netns, device)
            except OvsError as exc:
                raise OvnFailure(f"ovn: host port {ifname}: {exc}") from exc
            here.ip("link", "set", device, "up")
        lsp = lsp_name(peer)
        nb.transact([["--may-exist", "lsp-add", network, lsp], ["lsp-set-addresses", lsp, mac]])
        here.plug(peer, lsp, mac, {NETWORK_KEY: network})
        return lsp


def _link_exists(here: Chassis, ifname: str) -> bool:
    try:
        here.ip("link", "show", ifname)
    except OvnError:
        return False
    return True


def unplug_host(ifname: str) -> None:
    """Remove host port ``ifname`` (logical port, br-int port, veth); absent is fine. The
    chassis keeps running (the networks' last deletion stops it)."""
    with _lock:
        _hosts.pop(ifname, None)
        if _node is None or _chassis is None or not _chassis.running():
            return
        peer = host_peer(ifname)
        nbctl().run("--if-exists", "lsp-del", lsp_name(peer))
        _chassis.unplug(peer)
        if _link_exists(_chassis, ifname):
            _chassis.ip("link", "del", ifname)
