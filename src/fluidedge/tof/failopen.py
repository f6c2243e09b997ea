"""Fail-open: S1 keeps flowing while no TOF agent runs (kill -9, crash, stop, restart).

A bump in the wire must not cut the mobile network when its software dies. Both backends put a
tc program on the ingress of the two S1 interfaces that survives the agent process (a tc filter
holds its program and maps, not the process) and decides per frame whether the agent is alive:

- userspace backend: the *guard* (``fastpath/guard.bpf.c``, loaded by :class:`Guard`). While
  the agent lives, its AF_PACKET sockets forward S1 (they receive every frame before tc runs)
  and the guard lets the frame continue into the stack, which drops it as not addressed to this
  host; when the agent is gone it switches every frame to the other S1 interface unchanged.
- fast path: ``s1_ingress`` makes the same check first and, with no agent, switches every frame
  (nothing is punted to a dead agent or offloaded toward a TUN that no longer exists).

Liveness is the agent's apps TUN: the kernel unregisters a non-persistent TUN the moment the
process holding its fd exits, so "the TUN's ifindex still names a device" is an exact and
immediate signal with no heartbeat to miss (``bpf_check_mtu`` looks the device up by index and
fails when there is none). A data-plane thread that dies closes the TUN too. A new agent first
creates its ports and TUN, then swaps the program atomically (``tc filter replace``, same
preference and handle for both backends): there is no moment with neither.

The S1 interfaces are set promiscuous as a device flag, not only through the sockets'
membership (which goes with them): on a real NIC the program must keep receiving frames
addressed to the peers' MACs after the agent is gone.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import struct
from collections.abc import Iterable, Sequence

from fluidedge.linux import tc
from fluidedge.linux.libbpf import BpfMap, BpfObject
from fluidedge.linux.netns import call_in_netns
from fluidedge.linux.proc import CommandError, netns_argv, run
from fluidedge.tof.fastpath.build import object_path

log = logging.getLogger("fluidedge.tof")

GUARD_SOURCE = "guard.bpf.c"
# guard_cfg indexes (enum guard_cfg_index) and guard_stats indexes (enum guard_stat_index).
G_ENB_IF, G_SGW_IF, G_TUN_IF = 0, 1, 2
GS_AGENT, GS_SWITCHED = 0, 1
#: tc preference and handle of the S1 ingress program, the same for both backends, so a restart
#: (with either backend) replaces the previous program instead of stacking a second one.
S1_PREF = "1"
S1_HANDLE = "1"
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")


def ensure_bpffs() -> None:
    """A private bpffs for pinning programs while ``tc`` attaches them
    (:func:`fluidedge.linux.tc.ensure_bpffs`)."""
    tc.ensure_bpffs()


def attach(netns: str | None, dev: str, hook: str, prog_fd: int, *, pref: str = "1") -> None:
    """Attach (or atomically replace) program ``prog_fd`` on ``dev``'s ``hook`` (clsact), at
    handle :data:`S1_HANDLE` (the fast path's other programs use it too)."""
    tc.attach_bpf(netns, dev, hook, prog_fd, pref=pref, handle=S1_HANDLE)


def s1_program_attached(netns: str | None, dev: str) -> bool:
    """Does ``dev`` already carry an S1 ingress program (a previous agent's, failing open)?"""
    try:
        text = tc.show_filters(netns, dev, "ingress")
    except CommandError:
        return False
    return f"pref {S1_PREF} bpf" in text


OWN_PROGRAMS = ("s1_ingress", "s1_guard")  # the S1 programs a fluidedge agent attaches


def own_filters(show_text: str, programs: Iterable[str] = OWN_PROGRAMS) -> int:
    """How many filters ``tc filter show`` lists that are ours (pref/handle ours *and* one of
    ``programs``), as opposed to another tool's filter that happens to use the same pref."""
    pattern = re.compile(
        rf"\bpref {S1_PREF} bpf\b.*\bhandle 0x{int(S1_HANDLE):x}\b.*"
        rf"\bname ({'|'.join(map(re.escape, programs))})\b"
    )
    return sum(1 for line in show_text.splitlines() if pattern.search(line))


def own_s1_filter(show_text: str) -> bool:
    """Does ``tc filter show dev X ingress`` list our S1 filter?"""
    return own_filters(show_text) > 0


def missing_programs(
    netns: str | None, wanted: Sequence[tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """The (device, hook, program) of ``wanted`` that no longer carry our filter running that
    program: taken off from outside (``tc qdisc del dev X clsact``, a tool that replaces a
    device's qdiscs). One ``tc -batch`` when all are there (a check every second); one ``tc
    filter show`` each otherwise, to name what is missing."""
    listing = tc.show_filters_batch(netns, [(dev, hook) for dev, hook, _ in wanted])
    if own_filters(listing, {program for *_, program in wanted}) >= len(wanted):
        return []
    missing = []
    for dev, hook, program in wanted:
        try:
            text = tc.show_filters(netns, dev, hook)
        except CommandError:
            text = ""  # no clsact (or no device) any more
        if not own_filters(text, (program,)):
            missing.append((dev, hook, program))
    return missing


def reattached(missing: Sequence[tuple[str, str, str]], whose: str) -> list[str]:
    """Log the programs found taken off (``missing``: device, hook, program) and put back;
    their descriptions."""
    said = [f"{program} on {dev} {hook}" for dev, hook, program in missing]
    log.error(
        "tof: %s's %s taken off from outside; re-attached",
        whose,
        ", ".join(said),
        extra={"part": "tof", "event": "programs_lost"},
    )
    return said


def detach(netns: str | None, dev: str) -> None:
    """Remove our S1 filter from ``dev`` (``fail_open = false``, or a clean-up), and the clsact
    qdisc only when no other filter is left on it: other tools' programs stay attached."""
    try:
        text = tc.show_filters(netns, dev, "ingress")
    except CommandError:
        return  # no such device or no clsact
    if own_s1_filter(text):
        tc.delete_filter(netns, dev, "ingress", pref=S1_PREF, handle=S1_HANDLE)
    tc.drop_clsact_if_unused(netns, dev)


class Guard:
    """The userspace backend's guard: :meth:`attach` once the agent's TUN exists and its
    sockets are open, before its loop starts."""

    def __init__(self, netns: str | None, enb_if: str, sgw_if: str, tun: str) -> None:
        self.netns = netns
        self.enb_if, self.sgw_if, self.tun = enb_if, sgw_if, tun
        self._obj: BpfObject | None = None
        self._stats: BpfMap | None = None
        self._cfg: BpfMap | None = None

    def _ifindex(self, name: str) -> int:
        return int(call_in_netns(self.netns, lambda: socket.if_nametoindex(name)))

    def attach(self) -> None:
        self._obj = BpfObject(object_path(name=GUARD_SOURCE))
        self._cfg = cfg = BpfMap(self._obj.map_fd("guard_cfg"), 4, 4)
        self._stats = BpfMap(self._obj.map_fd("guard_stats"), 4, 8, percpu=True)
        for index, dev in ((G_ENB_IF, self.enb_if), (G_SGW_IF, self.sgw_if), (G_TUN_IF, self.tun)):
            cfg.update(_u32(index), _u32(self._ifindex(dev)))
        for dev in (self.enb_if, self.sgw_if):
            run(netns_argv(self.netns, ["ip", "link", "set", dev, "promisc", "on"]))
        self.reattach()

    def set_tun(self, ifindex: int) -> None:
        """The agent's TUN was re-created: its new ifindex is the sign of a live agent."""
        if self._cfg is not None:
            self._cfg.update(_u32(G_TUN_IF), _u32(ifindex))

    def programs(self) -> list[tuple[str, str, str]]:
        """(device, hook, program) of what :meth:`attach` attached."""
        return [(dev, "ingress", "s1_guard") for dev in (self.enb_if, self.sgw_if)]

    def reattach(self) -> None:
        """(Re-)attach the loaded guard on both S1 devices (a replace where it still is)."""
        if self._obj is None:
            return  # closed: the agent stops
        for dev, hook, program in self.programs():
            attach(self.netns, dev, hook, self._obj.prog_fd(program), pref=S1_PREF)

    def counters(self) -> dict[str, int]:
        """Frames the guard saw with the agent alive / switched itself (this guard only)."""
        if self._stats is None:
            return {}
        out = {}
        for index, name in ((GS_AGENT, "guard_agent_alive"), (GS_SWITCHED, "guard_switched")):
            values = self._stats.lookup_percpu(_u32(index))
            out[name] = sum(_U64.unpack(v[:8])[0] for v in values)
        return out

    def close(self) -> None:
        """Drop our references; the attached program and its maps stay with the filters."""
        self._stats = None
        self._cfg = None
        if self._obj is not None:
            with contextlib.suppress(OSError):
                self._obj.close()
            self._obj = None


def _u32(value: int) -> bytes:
    return _U32.pack(value)
