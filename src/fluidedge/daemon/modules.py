"""The kernel modules the configured parts need, loaded before the daemon's sandbox applies.

A stock Debian host loads neither ``br_netfilter`` (security groups on Linux bridges: bridged
frames through the inet hooks and conntrack) nor ``openvswitch`` (the kernel datapath) at
boot. The parts load them on first use, which works when the daemon runs as plain root; under
its systemd unit it cannot: the unit leaves ``CAP_SYS_MODULE`` out of its bounding set and sets
``ProtectKernelModules=yes``. The unit therefore runs ``fluidedge kernel-modules`` first, with
full privileges (``ExecStartPre=-+``), and it loads what :func:`needed` finds in the config:
nothing for a part that is off, so a host without security groups keeps its bridges as they
were (loading ``br_netfilter`` sends every bridged IPv4/IPv6 frame through netfilter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fluidedge.core.config import DaemonConfig
from fluidedge.linux.proc import CommandError, run

__all__ = ["load", "needed"]


def needed(config: DaemonConfig) -> list[str]:
    """The modules ``config``'s parts load on first use (pure)."""
    modules = []
    if "secgroups" in config.parts:
        modules.append("br_netfilter")
    datapath = config.parts.get("instances", {}).get("ovs_datapath", "netdev")
    if "instances" in config.parts and datapath in ("system", "auto"):
        modules.append("openvswitch")
    return modules


def _modprobe(argv: Sequence[str]) -> None:
    run(argv, timeout=60.0)


def load(
    modules: Sequence[str], modprobe: Callable[[Sequence[str]], None] = _modprobe
) -> dict[str, str]:
    """Load each of ``modules`` (``modprobe``: the seam the unit tests fake); what failed, by
    module, with modprobe's words. One failure does not stop the others."""
    failed = {}
    for module in modules:
        try:
            modprobe(["modprobe", "-q", module])
        except CommandError as exc:
            failed[module] = exc.stderr.strip() or f"exit status {exc.returncode}"
    return failed
