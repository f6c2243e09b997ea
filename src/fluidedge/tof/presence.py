"""What the TOF's data plane needs from the host before it can start, found or named.

The S1 interfaces (and the apps network's interface, when one is named) live on the host or in
``[tof] netns``; a reboot takes an operator's namespace and the interfaces moved into it, and
the operator's own set-up (a script, a unit, an orchestrator) makes them again, not always
before the daemon starts. WHY a check of its own: the daemon used to open the data plane first
and refuse its whole start when a device was not there, so after a reboot every instance, ME
app and rule of the node stayed down with the TOF. Now the TOF part waits for what this module
names (:mod:`fluidedge.tof.part`), and the rest of the node serves meanwhile.

:func:`missing` is the pure rule (tested without a kernel); :func:`observe` is the thin I/O.
Only *absence* is waited for: a device that is there but wrong (or any other failure of the
data plane's start) still refuses the start, with its reason, as a configuration error does.
"""

from __future__ import annotations

import socket
from collections.abc import Collection

from fluidedge.linux import netns
from fluidedge.tof.config import TofConfig


def interfaces(config: TofConfig) -> tuple[str, ...]:
    """The interfaces the data plane opens or checks and does not make itself (the apps TUN
    is its own; an ``apps_ovn_network``'s interface is made by the plug at start)."""
    if config.backend == "none":
        return ()
    if config.single_adapter:
        names = [config.s1_interface]
    else:
        names = [config.enb_interface, config.sgw_interface]
    if config.apps_interface is not None and config.apps_ovn_network is None:
        names.append(config.apps_interface)
    return tuple(name for name in names if name)


def missing(config: TofConfig, netns_found: bool, present: Collection[str]) -> str | None:
    """Why the data plane cannot start yet (None: nothing it needs is absent).

    ``netns_found``: whether ``[tof] netns`` exists (ignored without one); ``present``: the
    interface names found in it (or on the host).
    """
    if config.backend == "none":
        return None
    if config.netns is not None and not netns_found:
        return f"network namespace {config.netns!r} does not exist"
    gone = [name for name in interfaces(config) if name not in present]
    if not gone:
        return None
    noun = "interface" if len(gone) == 1 else "interfaces"
    verb = "is" if len(gone) == 1 else "are"
    return f"{noun} {', '.join(gone)} {verb} not in {netns.describe(config.netns)}"


def observe(config: TofConfig) -> str | None:
    """:func:`missing`, for the host as it is now."""
    if config.backend == "none":
        return None
    if config.netns is not None and not netns.exists(config.netns):
        return missing(config, False, ())
    try:
        names = netns.call_in_netns(config.netns, lambda: {n for _i, n in socket.if_nameindex()})
    except (netns.NetnsError, OSError) as exc:  # the namespace went since the look above
        return str(exc)
    return missing(config, True, names)
