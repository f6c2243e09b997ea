"""What the instance networks' ``ovs`` driver calls: bridges and ports on our own switches.

One switch (ovsdb-server + ovs-vswitchd, see :mod:`.daemons`) per network namespace, under
``<state dir>/ovs/<namespace or "host">``, started on the first bridge and stopped (its
directory removed) when its last bridge goes. A new bridge is ``fail_mode=secure`` with one
flow, ``priority=0 actions=NORMAL`` in table 0 (a learning switch); the security-group
renderer replaces its own flows (its cookie) atomically when it takes the bridge over, and
leaves other components' (service chains) alone.

The registry is per process (the daemon has one state directory); :func:`configure` sets it.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

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

_lock = threading.RLock()
_base: Path | None = None
_wanted = "netdev"  # netdev, system or auto (chosen per namespace: choose_datapath)
_module = False  # the openvswitch kernel module is there (looked up once, for auto)
_switches: dict[tuple[Path, str | None], OvsDaemons] = {}


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


def switch(netns: str | None, *, start: bool = False) -> OvsDaemons:
    """The switch of namespace ``netns`` (started or adopted if ``start``)."""
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
                    f"namespace {netns}" if netns else "the host's namespace",
                )
            daemons.datapath = datapath
            _switches[key] = daemons
        if start:
            daemons.start()
        return daemons


def running_switch(netns: str | None) -> OvsDaemons | None:
    """The switch of ``netns`` if it runs (nothing is started), else None."""
    with _lock:
        if _base is None:
            return None
        daemons = switch(netns)
        return daemons if daemons.running() else None


def ensure_bridge(bridge: str, netns: str | None, network: str, hwaddr: str | None = None) -> bool:
    """Create bridge ``bridge`` (starting the switch if needed); True if it was created.

    An existing bridge keeps its flows; one that has none (a vswitchd restarted underneath
    us) gets the base flow back, so a plain network forwards again. ``hwaddr``: its own MAC
    (see :meth:`Vsctl.add_bridge`).
    """
    with _lock:
        daemons = switch(netns, start=True)
        vsctl = Vsctl(daemons)
        created = bridge not in vsctl.bridges()
        vsctl.add_bridge(bridge, {"fluidedge-network": network}, hwaddr if created else None)
        _wait_link_up(vsctl, bridge, netns)
        ofctl = Ofctl(daemons, bridge)
        if created or not ofctl.dump():
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


def delete_bridge(bridge: str, netns: str | None) -> None:
    """Delete the bridge; the switch stops (and its directory goes) with its last bridge."""
    with _lock:
        daemons = running_switch(netns)
        if daemons is None:
            return
        vsctl = Vsctl(daemons)
        vsctl.del_bridge(bridge)
        if not vsctl.bridges():
            daemons.destroy()


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
) -> int:
    """Plug existing interface ``port`` into ``bridge``; return its OpenFlow port number.

    ``isolated``: the port never joins the learning switch: it is created as an access port
    of :data:`QUARANTINE_VLAN` (one transaction with the add) and moved to its own
    :func:`isolation_vlan` once its number is known; its interface is marked :data:`ISOLATED`
    so that the chains part leaves it isolated when no chain uses it."""
    daemons = running_switch(netns)
    if daemons is None:
        raise OvsNotRunning(f"ovs: no switch runs for bridge {bridge}")
    vsctl = Vsctl(daemons)
    if not isolated:
        return vsctl.add_port(bridge, port, external_ids)
    ofport = vsctl.add_port(bridge, port, {**external_ids, ISOLATED: "true"}, tag=QUARANTINE_VLAN)
    vsctl.set_tag(port, isolation_vlan(ofport))
    return ofport


def del_port(netns: str | None, port: str) -> None:
    """Remove ``port`` from our switch in ``netns`` if it is there (nothing runs: nothing to do)."""
    daemons = running_switch(netns)
    if daemons is not None:
        Vsctl(daemons).del_port(port)


def bridge_names(netns: str | None) -> list[str]:
    """Bridges of our switch in ``netns`` (none if it does not run)."""
    daemons = running_switch(netns)
    return Vsctl(daemons).bridges() if daemons is not None else []


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
