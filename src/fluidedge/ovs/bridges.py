"""What the instance networks' ``ovs`` driver calls: bridges and ports on our own switches.

One switch (ovsdb-server + ovs-vswitchd, see :mod:`.daemons`) per network namespace, under
``<state dir>/ovs/<namespace or "host">``, started on the first bridge and stopped (its
directory removed) when its last bridge goes. A new bridge is ``fail_mode=secure`` with one
flow, ``priority=0 actions=NORMAL`` in table 0 (a learning switch); the security-group
renderer replaces its own flows (its cookie) atomically when it takes the bridge over, and
leaves other components' (service chains) alone.

The registry is per process (the daemon has one state directory); :func:`configure` sets it.

A switch that dies under the daemon (an OOM kill, a crash, a stray ``kill``) takes every flow
with it: its bridges are ``fail_mode=secure``, so they forward nothing until flows are back.
:func:`revive`, run every few seconds by the instances part, restarts it from its database
(bridges and ports are declared there), bumps its :attr:`~.daemons.OvsDaemons.generation`,
lets each component that keeps flows on it put them back (:func:`add_restorer`: the security
groups' table, the chains' steering) and only then gives a bridge that still has no flow its
learning-switch flow: a filtered port never forwards unfiltered on the way back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fluidedge.linux import netns as netns_mod
from fluidedge.linux.proc import netns_argv
from fluidedge.ovs import tool
from fluidedge.ovs.daemons import (
    OvsDaemons,
    choose_datapath,
    foreign_switches,
    kernel_datapath_available,
)
from fluidedge.ovs.errors import OvsFailure, OvsNotRunning
from fluidedge.ovs.ofctl import Ofctl
from fluidedge.ovs.vsctl import Vsctl

log = logging.getLogger("fluidedge.ovs")

BASE_FLOW = "table=0,priority=0,actions=NORMAL"
# Bridge external_ids key naming the network whose bridge it is (its owner).
NETWORK_ID = "fluidedge-network"

_lock = threading.RLock()
_base: Path | None = None
_wanted = "netdev"  # netdev, system or auto (chosen per namespace: choose_datapath)
_module = False  # the openvswitch kernel module is there (looked up once, for auto)
_switches: dict[tuple[Path, str | None], OvsDaemons] = {}
# The switches with bridges of ours (kept alive by revive), and those restarted whose flows are
# not all back yet (a restorer failed: tried again at the next revive).
_kept: dict[tuple[Path, str | None], OvsDaemons] = {}
_pending: set[tuple[Path, str | None]] = set()
# What puts a component's flows back on the bridges of a restarted switch (its namespace).
Restorer = Callable[[str | None], None]
_restorers: list[Restorer] = []


def configure(state_dir: Path, datapath: str = "netdev") -> None:
    """Put this process's switches under ``state_dir/ovs``; ``datapath``: netdev/system/auto."""
    global _base, _wanted, _module  # noqa: PLW0603 (one registry per process, set at start)
    choose_datapath(datapath, module=False, foreign=False)  # refuses an unknown name
    with _lock:
        _base = state_dir / "ovs"
        _wanted = datapath
        _module = datapath == "auto" and kernel_datapath_available()


def _root(netns: str | None) -> Path:
    if _base is None:
        raise OvsNotRunning("ovs: no state directory configured for Open vSwitch networks")
    return _base / (f"ns-{netns}" if netns else "host")


def switch(netns: str | None) -> OvsDaemons:
    """The switch of namespace ``netns`` (nothing is started)."""
    with _lock:
        root = _root(netns)
        key = (root, netns)
        daemons = _switches.get(key)
        if daemons is None:
            # auto: the kernel datapath only where no other switch has it (an operator's own
            # Open vSwitch, see fluidedge.ovs.daemons)
            daemons = OvsDaemons(root, netns)
            foreign = (
                _wanted == "auto"
                and _module
                and bool(foreign_switches(netns, ours=daemons.pids()[1]))  # ours: adopted
            )
            datapath = choose_datapath(_wanted, module=_module, foreign=foreign)
            if foreign:
                log.warning(
                    "ovs: another ovs-vswitchd runs in %s: its switch keeps the kernel "
                    "datapath, ours uses the userspace one (ovs_datapath = auto)",
                    netns_mod.describe(netns),
                )
            daemons.datapath = datapath
            _switches[key] = daemons
        return daemons


def _start(daemons: OvsDaemons) -> tuple[Path, str | None]:
    """Start (or adopt) ``daemons``; its registry key. A switch that is started with bridges
    in its database was restarted: they hold no flow until :func:`revive` restores them in
    order (lock held)."""
    key = (daemons.root, daemons.netns)
    if daemons.start() and Vsctl(daemons).bridges():
        log.warning(
            "ovs: the switch of %s was not running: restarted from its database; its bridges "
            "forward nothing until their flows are back",
            netns_mod.describe(daemons.netns),
        )
        _pending.add(key)
    return key


def running_switch(netns: str | None) -> OvsDaemons | None:
    """The switch of ``netns`` if it runs (nothing is started), else None."""
    with _lock:
        if _base is None:
            return None
        daemons = switch(netns)
        return daemons if daemons.running() else None


def ensure_bridge(bridge: str, netns: str | None, network: str, hwaddr: str | None = None) -> bool:
    """Create bridge ``bridge`` (starting the switch if needed); True if it was created.

    An existing bridge keeps its flows. If this call (or :func:`declared_bridges`) restarts a
    switch that died, its existing bridges hold no flow: :func:`revive` puts them back, the
    restorers' first, then the base flow where none is left (the daemon calls it once all its
    parts have started, then every check interval). ``hwaddr``: its own MAC (see
    :meth:`Vsctl.add_bridge`).
    """
    with _lock:
        daemons = switch(netns)
        key = _start(daemons)
        _kept[key] = daemons
        vsctl = Vsctl(daemons)
        created = bridge not in vsctl.bridges()
        if not created:
            label = vsctl.bridge_id(bridge, NETWORK_ID)
            if label not in (None, network):
                raise OvsFailure(f"ovs: bridge {bridge} is network {label}'s")
        vsctl.add_bridge(bridge, {NETWORK_ID: network}, hwaddr if created else None)
        _wait_link_up(vsctl, bridge, netns)
        ofctl = Ofctl(daemons, bridge)
        if created or (key not in _pending and not ofctl.dump()):
            ofctl.bundle([f"add {BASE_FLOW}"])
        return created


def _wait_link_up(vsctl: Vsctl, bridge: str, netns: str | None, timeout: float = 10.0) -> None:
    """Set the bridge's own (internal) interface up once vswitchd has created it."""
    deadline = time.monotonic() + timeout
    while True:
        done = tool.run(netns_argv(netns, ["ip", "link", "set", bridge, "up"]), {}, check=False)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            log = vsctl.daemons.log_dir / "ovs-vswitchd.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            if "ovs-netdev: creating tap device failed: Device or resource busy" in text:
                where = f"namespace {netns}" if netns else "the host namespace"
                raise OvsFailure(
                    f"ovs: another Open vSwitch with the userspace datapath already runs in "
                    f"{where} (its 'ovs-netdev' device is taken; one such switch per network "
                    "namespace): put this network in a namespace of its own"
                )
            raise OvsFailure(f"ovs: bridge {bridge} did not appear: {done.stderr.strip()}")
        time.sleep(0.05)


def delete_bridge(bridge: str, netns: str | None, network: str | None = None) -> bool:
    """Delete the bridge; the switch stops (and its directory goes) with its last bridge.

    ``network``: only if the bridge is that network's (:data:`NETWORK_ID`, set by
    :func:`ensure_bridge`): a stored network naming another network's bridge (a damaged
    row) must not take it away. False if it was not (True: deleted, or no switch runs).
    """
    with _lock:
        daemons = running_switch(netns)
        if daemons is None:
            return True
        vsctl = Vsctl(daemons)
        if network is not None:
            label = vsctl.bridge_id(bridge, NETWORK_ID)
            if label != network and bridge in vsctl.bridges():
                return False
        vsctl.del_bridge(bridge)
        if not vsctl.bridges():
            _kept.pop((daemons.root, netns), None)
            _pending.discard((daemons.root, netns))
            daemons.destroy()
        return True


def add_restorer(restorer: Restorer) -> None:
    """Call ``restorer(netns)`` when :func:`revive` restarts the switch of ``netns``, before
    any bridge of it gets its learning-switch flow back; it raises if its flows are not back
    (the switch's bridges then stay without flows, dropping, until a later revive)."""
    with _lock:
        _restorers.append(restorer)


def remove_restorer(restorer: Restorer) -> None:
    with _lock:
        if restorer in _restorers:
            _restorers.remove(restorer)


def revive() -> list[str | None]:
    """Restart each switch of ours that died under us, and put its flows back; the namespaces
    whose switch is whole again. When nothing died: two pidfile reads, one ``ovs-vsctl
    list-br`` and one ``ovs-ofctl dump-aggregate`` per bridge of each switch.

    A restarted switch reads its bridges and ports from its database but holds no flow (its
    bridges drop everything, ``fail_mode=secure``). The restorers (:func:`add_restorer`) put
    their components' flows back first; a bridge with no flow after them gets
    :data:`BASE_FLOW`. If a restorer fails, nothing gets the base flow (a network whose rules
    are missing must not forward unfiltered) and the whole restore is tried again next time.
    A live switch with a bridge that holds no flow at all is restored the same way: every flow
    of it deleted from outside (``ovs-ofctl del-flows``), which no other check sees on a
    bridge without security groups or chains (their checks put back only their own flows,
    never the learning-switch flow), so the network forwarded nothing, for good.
    Raises what the restart raised (the caller logs it and tries again).
    """
    with _lock:
        kept = list(_kept.items())
    whole: list[str | None] = []
    for key, daemons in kept:
        db, vswitchd = daemons.pids()
        if db is not None and vswitchd is not None and key not in _pending:
            emptied = _emptied(key, daemons)
            if not emptied:
                continue
            log.error(
                "ovs: every flow of bridge %s on the switch of %s was deleted from outside "
                "(its ports forwarded nothing); put back",
                ", ".join(emptied),
                netns_mod.describe(daemons.netns),
                extra={"part": "ovs", "event": "flows_deleted"},
            )
        with _lock:
            if _kept.get(key) is not daemons:
                continue  # its last bridge went meanwhile
            if daemons.netns is not None and not netns_mod.exists(daemons.netns):
                # Its namespace was deleted (its networks with it): nothing to restart there,
                # and a namespace made later under that name is another one.
                del _kept[key]
                _pending.discard(key)
                log.warning(
                    "ovs: the switch of namespace %s: the namespace is gone; switch forgotten",
                    daemons.netns,
                )
                continue
            if db is None or vswitchd is None:
                _restart(daemons, db, vswitchd)
            _pending.add(key)  # restarted, emptied or a restore to finish: restorers first
            restorers = list(_restorers)
        # Outside the lock: a restorer takes its component's own lock, which that component
        # may hold while it calls in here (a port plugged during an instance's creation).
        for restorer in restorers:
            restorer(daemons.netns)
        with _lock:
            if _kept.get(key) is not daemons:
                continue
            vsctl = Vsctl(daemons)
            for bridge in vsctl.bridges():
                _wait_link_up(vsctl, bridge, daemons.netns)
                ofctl = Ofctl(daemons, bridge)
                if not ofctl.dump():
                    ofctl.bundle([f"add {BASE_FLOW}"])
            _pending.discard(key)
        log.warning(
            "ovs: the switch of %s is whole again: its flows are back",
            netns_mod.describe(daemons.netns),
        )
        whole.append(daemons.netns)
    return whole


def _emptied(key: tuple[Path, str | None], daemons: OvsDaemons) -> list[str]:
    """The bridges of a live switch of ours that hold no flow at all. Looked at without the
    registry's lock, which every port plugged and every network made takes (the look is one
    ``ovs-ofctl`` per bridge: tens of milliseconds for many bridges, each second), then
    confirmed under it: a bridge being made holds no flow until :func:`ensure_bridge`, which
    holds the lock, gives it its flow. Our own changes of a table are atomic bundles, never
    empty in between. A bridge or switch of ours going meanwhile makes the unlocked look fail:
    it is then made again under the lock, where an error is the caller's to log."""
    seen: list[str] | None
    try:
        seen = [b for b in Vsctl(daemons).bridges() if Ofctl(daemons, b).count() == 0]
    except OvsFailure:
        seen = None
    if seen == []:
        return []
    with _lock:
        if _kept.get(key) is not daemons:
            return []
        suspects = [b for b in Vsctl(daemons).bridges() if seen is None or b in seen]
        return [b for b in suspects if Ofctl(daemons, b).count() == 0]


def _restart(daemons: OvsDaemons, db: int | None, vswitchd: int | None) -> None:
    dead = [name for name, pid in (("ovsdb-server", db), ("ovs-vswitchd", vswitchd)) if not pid]
    log.error(
        "ovs: %s of the switch of %s died; restarting it (its bridges forward nothing until "
        "their flows are back)",
        " and ".join(dead),
        netns_mod.describe(daemons.netns),
        extra={"part": "ovs", "event": "switch_died"},
    )
    daemons.start()


# The access VLAN an isolated port is plugged into, for the moment between its creation and
# the VLAN of its own (:func:`isolation_vlan` never gives it). Nothing is running behind a
# port in that moment: the instances part plugs a shell before its process may start.
QUARANTINE_VLAN = 4094
# Interface external_ids key of the MAC behind a port (the instance's interface), as
# OpenStack's agents name it.
ATTACHED_MAC = "attached-mac"
# Interface external_ids key marking a port plugged isolated (it stays so whatever a chain does).
ISOLATED = "fluidedge-isolated"


def isolation_vlan(ofport: int) -> int:
    """The access VLAN of an isolated port (a service function's leg): one per port (2-4093
    from its OpenFlow number), so the learning switch has no other port to forward or flood
    its frames to, nor theirs to it. OpenFlow ``output:`` actions reach it as before (access
    VLANs are the NORMAL action's business). ``protected`` ports would do the first half but
    also block outputs from one function to the next; ``no-flood`` did not stop NORMAL's
    floods."""
    return 2 + ofport % 4092


def add_port(
    bridge: str,
    netns: str | None,
    port: str,
    external_ids: dict[str, str],
    *,
    isolated: bool = False,
    number: int | None = None,
) -> int:
    """Plug existing interface ``port`` into ``bridge``; return its OpenFlow port number
    (``number`` if given and free: see :func:`take_port`).

    ``isolated``: the port never joins the learning switch: it is created as an access port
    of :data:`QUARANTINE_VLAN` (one transaction with the add) and moved to its own
    :func:`isolation_vlan` once its number is known; its interface is marked :data:`ISOLATED`
    so that the chains part leaves it isolated when no chain uses it."""
    daemons = running_switch(netns)
    if daemons is None:
        raise OvsNotRunning(f"ovs: no switch runs for bridge {bridge}")
    vsctl = Vsctl(daemons)
    if not isolated:
        return vsctl.add_port(bridge, port, external_ids, number=number)
    ofport = vsctl.add_port(
        bridge, port, {**external_ids, ISOLATED: "true"}, tag=QUARANTINE_VLAN, number=number
    )
    vsctl.set_tag(port, isolation_vlan(ofport))
    return ofport


def del_port(netns: str | None, port: str) -> None:
    """Remove ``port`` from our switch in ``netns`` if it is there (nothing runs: nothing to do)."""
    daemons = running_switch(netns)
    if daemons is not None:
        Vsctl(daemons).del_port(port)


def take_port(netns: str | None, port: str) -> int | None:
    """Remove ``port``, whose device was deleted from outside, from our switch in ``netns``,
    and return the OpenFlow port number it had (None: no such port), for the port plugged
    again in its place to get (:func:`add_port`): the flows of the security groups and
    chains name it. Open vSwitch's userspace datapath does not notice a deleted device: the
    port must go for the switch to open the new one."""
    daemons = running_switch(netns)
    if daemons is None:
        return None
    vsctl = Vsctl(daemons)
    number = vsctl.ofport_if_any(port)
    vsctl.del_port(port)
    return number


def bridge_names(netns: str | None) -> list[str]:
    """Bridges of our switch in ``netns`` (none if it does not run)."""
    daemons = running_switch(netns)
    return Vsctl(daemons).bridges() if daemons is not None else []


def declared_bridges(netns: str | None) -> list[str]:
    """Bridges our switch in ``netns`` has in its database, starting it if it has one but does
    not run (it died while no daemon ran: its bridges' interfaces may still be there)."""
    with _lock:
        daemons = switch(netns)
        if not daemons.db_file.exists():
            return []
        _start(daemons)
        return Vsctl(daemons).bridges()


def ports(bridge: str, netns: str | None) -> list[str]:
    daemons = running_switch(netns)
    if daemons is None:
        return []
    vsctl = Vsctl(daemons)
    return vsctl.ports(bridge) if bridge in vsctl.bridges() else []


def disable_tx_offload(netns_path: str | None, netns: str | None, ifname: str) -> None:
    """``ethtool -K <if> tx off``: the userspace datapath reads packets with AF_PACKET, and a
    veth's TX checksum offload hands it TCP/UDP segments whose checksum was never computed
    (ICMP works, TCP times out). ``netns_path`` (``/proc/<pid>/ns/net``) wins over ``netns``."""
    argv = ["ethtool", "-K", ifname, "tx", "off"]
    if netns_path is not None:
        argv = ["nsenter", f"--net={netns_path}", "--", *argv]
    else:
        argv = netns_argv(netns, argv)
    tool.run(argv, {})
