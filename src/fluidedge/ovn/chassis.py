"""One OVN chassis, run by fluidedge: our own Open vSwitch plus ``ovn-controller``, no systemd.

A chassis lives in a network namespace (a host; on a real server the root namespace) with
its own ``ovsdb-server``/``ovs-vswitchd`` pair (:class:`fluidedge.ovs.daemons.OvsDaemons`,
userspace ``netdev`` datapath by default) under ``root/ovs`` and its ``ovn-controller`` under
``root/ovn`` (both 0700). The switch's ``Open_vSwitch`` row carries what ovn-controller reads:
``system-id`` (the chassis name), ``ovn-remote`` (the SB), ``ovn-encap-type=geneve``,
``ovn-encap-ip`` and ``ovn-bridge-datapath-type`` (so ``br-int`` is a bridge of the same
datapath). For userspace tunnelling the encap IP sits on ``br-phy``, an OVS bridge that owns
the underlay device: vswitchd routes and ARPs for its tunnels through it.

Instances plug into ``br-int`` with ``external_ids:iface-id=<logical port>``; ovn-controller
then claims the logical port for this chassis (:meth:`Chassis.plug`).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from fluidedge.linux import addrs
from fluidedge.linux.proc import netns_argv
from fluidedge.ovn import tool
from fluidedge.ovn.errors import OvnFailure, OvnInvalid
from fluidedge.ovs.daemons import OvsDaemons

INTEGRATION_BRIDGE = "br-int"
PHYSICAL_BRIDGE = "br-phy"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_IFACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
_LSP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,95}$")


def check_chassis_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise OvnInvalid(f"ovn: invalid chassis name {name!r} (want {_NAME.pattern})")
    return name


def check_lsp(name: str) -> str:
    if not _LSP.fullmatch(name):
        raise OvnInvalid(f"ovn: invalid logical port name {name!r} (want {_LSP.pattern})")
    return name


def check_iface(name: str) -> str:
    if not _IFACE.fullmatch(name):
        raise OvnInvalid(f"ovn: invalid interface name {name!r}")
    return name


class Chassis:
    """Switch + ovn-controller of chassis ``name`` in namespace ``netns``.

    ``underlay`` is the device (already in ``netns``) that reaches the other chassis;
    ``encap`` the address (with prefix) put on ``br-phy`` for the tunnels. Without
    ``underlay`` the encap address goes on ``br-phy`` alone (a single chassis needs no
    tunnel).
    """

    def __init__(
        self,
        root: Path,
        name: str,
        sb_remote: str,
        encap: str,
        *,
        netns: str | None = None,
        underlay: str | None = None,
        datapath: str = "netdev",
    ) -> None:
        self.root = root
        self.name = check_chassis_name(name)
        self.sb_remote = sb_remote
        try:
            self.encap = ipaddress.ip_interface(encap)
        except ValueError as exc:
            raise OvnInvalid(f"ovn: invalid encap address {encap!r}") from exc
        self.netns = netns
        self.underlay = check_iface(underlay) if underlay else None
        self.ovs = OvsDaemons(root / "ovs", netns, datapath)
        self.ovn_dir = root / "ovn"
        self.pidfile = self.ovn_dir / "ovn-controller.pid"

    @property
    def env(self) -> dict[str, str]:
        d = str(self.ovn_dir)
        return {**self.ovs.env, "OVN_RUNDIR": d, "OVN_DBDIR": d, "OVN_LOGDIR": d}

    def vsctl(self, *args: str) -> str:
        argv = ["ovs-vsctl", f"--db={self.ovs.db}", "--timeout=30", *args]
        return tool.run(argv, self.ovs.env, timeout=40.0).stdout

    def ip(self, *args: str) -> None:
        tool.run(netns_argv(self.netns, ["ip", *args]), {})

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 30.0) -> None:
        """Start (or adopt) the switch, configure it, start ovn-controller, wait for br-int."""
        tool.private(self.root)
        tool.private(self.ovn_dir)
        self.ovs.start(timeout)
        self.vsctl(
            "set",
            "Open_vSwitch",
            ".",
            f"external_ids:system-id={self.name}",
            f'external_ids:ovn-remote="{self.sb_remote}"',
            "external_ids:ovn-encap-type=geneve",
            f"external_ids:ovn-encap-ip={self.encap.ip}",
            f"external_ids:ovn-bridge-datapath-type={self.ovs.datapath}",
        )
        if PHYSICAL_BRIDGE not in addrs.parse(tool.run(addrs.argv(self.netns), {}).stdout):
            # Its device deleted from outside (ip link del), the switch keeps the bridge's row
            # and port with no device under it and makes none again: the bridge is made again
            # whole (nothing of ours on it but the underlay's port, added again below).
            self.vsctl("--if-exists", "del-br", PHYSICAL_BRIDGE)
        self.vsctl(
            "--may-exist",
            "add-br",
            PHYSICAL_BRIDGE,
            "--",
            "set",
            "Bridge",
            PHYSICAL_BRIDGE,
            f"datapath_type={self.ovs.datapath}",
        )
        if self.underlay is not None:
            self.vsctl("--may-exist", "add-port", PHYSICAL_BRIDGE, self.underlay)
            self.ip("link", "set", self.underlay, "up")
        self.ip("addr", "replace", str(self.encap), "dev", PHYSICAL_BRIDGE)
        self.ip("link", "set", PHYSICAL_BRIDGE, "up")
        if tool.alive(self.pidfile) is None:
            tool.run(
                netns_argv(
                    self.netns,
                    [
                        "ovn-controller",
                        self.ovs.db,
                        f"--pidfile={self.pidfile}",
                        f"--log-file={self.ovn_dir / 'ovn-controller.log'}",
                        "--detach",
                        "--no-chdir",
                    ],
                ),
                self.env,
                timeout=timeout,
            )
        tool.wait(
            self._has_integration_bridge,
            f"chassis {self.name}: ovn-controller made no {INTEGRATION_BRIDGE} "
            f"(see {self.ovn_dir})",
            timeout,
        )

    def _has_integration_bridge(self) -> bool:
        return INTEGRATION_BRIDGE in self.vsctl("list-br").split()

    def control_socket(self) -> Path | None:
        """``ovn-controller.<pid>.ctl`` (23.03 has no ``--unixctl``: the name carries the pid)."""
        pid = tool.alive(self.pidfile)
        if pid is None:
            return None
        ctl = self.ovn_dir / f"ovn-controller.{pid}.ctl"
        return ctl if ctl.exists() else None

    def running(self) -> bool:
        return tool.alive(self.pidfile) is not None and self.ovs.running()

    def dead(self) -> list[str]:
        """Which of its daemons are not running (three pidfile reads, no subprocess)."""
        db, vswitchd = self.ovs.pids()
        controller = tool.alive(self.pidfile)
        pids = (("ovsdb-server", db), ("ovs-vswitchd", vswitchd), ("ovn-controller", controller))
        return [name for name, pid in pids if pid is None]

    def tunnel_lost(self) -> list[str]:
        """What of the tunnels' side :meth:`start` set up is no longer there: the encap
        address on ``br-phy``, ``br-phy`` up, the underlay up (one ``ip -j addr`` in the
        chassis namespace). Without any of them no geneve packet leaves or arrives: every
        instance here is cut off from the other nodes', with every daemon alive."""
        devices = [PHYSICAL_BRIDGE] + ([self.underlay] if self.underlay is not None else [])
        found = addrs.parse(tool.run(addrs.argv(self.netns), {}).stdout)
        lost = []
        for device in devices:
            row = found.get(device)
            if row is None:
                lost.append(f"{device} is gone")
            elif not row.up:
                lost.append(f"{device} is down")
        phy = found.get(PHYSICAL_BRIDGE)
        if phy is not None and not phy.has(self.encap):
            lost.append(f"the encap address {self.encap} is not on {PHYSICAL_BRIDGE}")
        return lost

    def stop(self) -> None:
        """Stop ovn-controller (it removes its Chassis row from the SB), then the switch."""
        tool.stop_daemon(self.control_socket(), self.pidfile, self.env)
        self.ovs.stop()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ instances
    def plug(
        self,
        device: str,
        lsp: str,
        mac: str | None = None,
        external_ids: Mapping[str, str] | None = None,
    ) -> None:
        """Add ``device`` (in the chassis namespace) to br-int, bound to logical port ``lsp``."""
        check_iface(device)
        check_lsp(lsp)
        extra = [f"external_ids:iface-id={lsp}"]
        if mac is not None:
            extra.append(f'external_ids:attached-mac="{mac}"')
        for key, value in sorted((external_ids or {}).items()):
            if not _LSP.fullmatch(key) or not _LSP.fullmatch(value):
                raise OvnInvalid(f"ovn: invalid external_ids entry {key!r}={value!r}")
            extra.append(f'external_ids:{key}="{value}"')
        self.vsctl(
            "--may-exist",
            "add-port",
            INTEGRATION_BRIDGE,
            device,
            "--",
            "set",
            "Interface",
            device,
            *extra,
        )

    def unplug(self, device: str) -> None:
        self.vsctl("--if-exists", "del-port", INTEGRATION_BRIDGE, check_iface(device))

    def bound_ports(self) -> set[str]:
        """Logical ports whose interface is on br-int here (``iface-id`` of each Interface)."""
        text = self.vsctl("--format=json", "--columns=external_ids", "list", "Interface")
        out: set[str] = set()
        for (ids,) in json.loads(text).get("data", []):
            pairs = dict(ids[1]) if isinstance(ids, list) and ids and ids[0] == "map" else {}
            if "iface-id" in pairs:
                out.add(str(pairs["iface-id"]))
        return out


def require_tools() -> None:
    """Fail clearly when the OVN packages are missing."""
    for binary in ("ovn-controller", "ovn-northd", "ovn-nbctl", "ovsdb-server"):
        if shutil.which(binary) is None:
            raise OvnFailure(f"ovn: {binary} not installed (Debian packages ovn-central, ovn-host)")
