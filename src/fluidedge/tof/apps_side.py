"""What the apps side needs before the TOF starts, set up or refused with exact reasons.

Offloaded packets are written into the apps TUN and must be *forwarded* by the kernel to the
app (and the app's replies forwarded back into the TUN), so IP forwarding must be on in
``[tof] netns`` for every family of the UE pools. When the apps network is named
(``apps_interface``), it must exist, be up and, if ``apps_gateway`` is given, carry that
address (the apps route the UE pools to it). WHY a check at start: without these the TOF runs
and offload silently black-holes, which operators only found by hand.

``apps_setup`` decides: ``"auto"`` makes it so (sysctl, ``ip link set up``, ``ip addr add``);
``"check"`` changes nothing and refuses to start with one line per missing item, each with the
command that fixes it. Default: ``auto`` inside a namespace the TOF is given (``netns``),
``check`` in the root namespace, whose host-wide settings the TOF must not change on its own.

:func:`plan` is the pure policy (tested without a kernel); :func:`prepare` is the thin I/O.
The data plane's check (every ``program_check_interval``) plans again with what it observes
then, and sets back (``auto``) or says (``check``) what changed from outside since the start
(:meth:`fluidedge.tof.dataplane_common.DataPlaneBase._heal_apps_side`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fluidedge.linux import addrs
from fluidedge.linux.netns import NetnsError, call_in_netns
from fluidedge.linux.proc import CommandError, netns_argv, run
from fluidedge.tof.config import TofConfig
from fluidedge.tof.errors import DataPlaneError


@dataclass(frozen=True, slots=True)
class Observed:
    """The apps side as found: forwarding per family, the interface and its addresses."""

    forwarding4: bool
    forwarding6: bool
    interface_exists: bool = False
    interface_up: bool = False
    addresses: frozenset[str] = field(default_factory=frozenset)  # "198.19.0.1/24"


@dataclass(frozen=True, slots=True)
class Plan:
    """Commands that make the apps side ready, and what is missing (one line each)."""

    commands: tuple[tuple[str, ...], ...]
    missing: tuple[str, ...]
    fatal: tuple[str, ...]  # missing items no command of ours can fix


def mode(config: TofConfig) -> str:
    """``auto`` or ``check`` (see the module docstring)."""
    if config.apps_setup is not None:
        return config.apps_setup
    return "auto" if config.netns is not None else "check"


def plan(config: TofConfig, observed: Observed) -> Plan:
    """What to do (``auto``) or to refuse with (``check``) for ``observed`` (pure)."""
    where = f"namespace {config.netns}" if config.netns else "the root namespace"
    commands: list[tuple[str, ...]] = []
    missing: list[str] = []
    fatal: list[str] = []
    families = {ipaddress.ip_network(p).version for p in config.ue_pools} or {4}
    for version, on, key in (
        (4, observed.forwarding4, "net.ipv4.ip_forward"),
        (6, observed.forwarding6, "net.ipv6.conf.all.forwarding"),
    ):
        if version in families and not on:
            commands.append(("sysctl", "-qw", f"{key}=1"))
            missing.append(f"{key} is 0 in {where} (fix: sysctl -w {key}=1)")
    dev = config.apps_interface
    if dev is not None:
        if not observed.interface_exists:
            fatal.append(f"apps interface {dev} does not exist in {where}")
        else:
            if not observed.interface_up:
                commands.append(("ip", "link", "set", dev, "up"))
                missing.append(f"apps interface {dev} is down (fix: ip link set {dev} up)")
            gateway = config.apps_gateway
            if gateway is not None and gateway not in observed.addresses:
                commands.append(("ip", "addr", "add", gateway, "dev", dev))
                missing.append(
                    f"apps interface {dev} lacks the gateway address {gateway} "
                    f"(fix: ip addr add {gateway} dev {dev})"
                )
    return Plan(tuple(commands), tuple(missing), tuple(fatal))


Runner = Callable[[Sequence[str]], str]


def runner_in(netns: str | None) -> Runner:
    def go(argv: Sequence[str]) -> str:
        return run(netns_argv(netns, list(argv))).stdout

    return go


SysctlReader = Callable[[Sequence[str]], list[bool]]
FORWARDING = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")


def sysctls_in(netns: str | None) -> SysctlReader:
    """Whether each of some sysctls is ``1`` in ``netns``, read from ``/proc/sys`` by one
    thread inside it (what ``/proc/sys/net`` shows is the opener's namespace): no process
    started, one namespace switch for all of them, for the check that runs every
    ``program_check_interval``. A key that cannot be read is not ``1``."""

    def on(keys: Sequence[str]) -> list[bool]:
        paths = ["/proc/sys/" + key.replace(".", "/") for key in keys]

        def read() -> list[bool]:
            found = []
            for path in paths:
                try:
                    with open(path, "rb") as f:
                        found.append(f.read(16).strip() == b"1")
                except OSError:
                    found.append(False)
            return found

        try:
            return call_in_netns(netns, read)
        except (OSError, NetnsError):
            return [False] * len(paths)

    return on


def observe(config: TofConfig, runner: Runner, sysctl: SysctlReader | None = None) -> Observed:
    """Read forwarding (through ``sysctl``, else ``sysctl -n``) and the apps interface's state
    (``ip -j``) through ``runner``."""

    def sysctl_n(keys: Sequence[str]) -> list[bool]:
        found = []
        for key in keys:
            try:
                found.append(runner(["sysctl", "-n", key]).strip() == "1")
            except CommandError:
                found.append(False)
        return found

    if sysctl is None:
        sysctl = sysctl_n

    exists = up = False
    addresses: set[str] = set()
    if config.apps_interface is not None:
        try:
            device = addrs.parse(runner(addrs.argv(dev=config.apps_interface))).get(
                config.apps_interface
            )
        except (CommandError, ValueError):
            device = None
        if device is not None:
            exists, up = True, device.up
            addresses = {str(a) for a in device.addresses}
    forwarding4, forwarding6 = sysctl(FORWARDING)
    return Observed(
        forwarding4,
        forwarding6,
        exists,
        up,
        frozenset(addresses),
    )


def prepare(config: TofConfig, runner: Runner | None = None) -> Plan:
    """Set up the apps side (``auto``) or raise :class:`DataPlaneError` saying what is missing."""
    runner = runner or runner_in(config.netns)
    found = plan(config, observe(config, runner))
    if found.fatal or (found.missing and mode(config) == "check"):
        items = "; ".join((*found.fatal, *found.missing))
        hint = "" if found.fatal else ' (or set apps_setup = "auto" to let the TOF do it)'
        raise DataPlaneError(f"apps side not ready: {items}{hint}")
    for argv in found.commands:
        runner(argv)
    return found
