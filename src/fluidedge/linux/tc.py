"""tc plumbing for eBPF programs on a device's clsact qdisc: attach, list, delete, tidy up;
and the isolation of a Linux bridge port (:func:`isolate`: its tc filters and its bridge flags).

``tc filter replace`` at a fixed preference and handle swaps a program atomically, so a new
program replaces its predecessor with no moment without either (the TOF's fail-open relies on
it). Every command runs through :func:`~fluidedge.linux.proc.run` (argv, never a shell),
inside network namespace ``netns`` when one is given.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fluidedge.linux.libbpf import pin
from fluidedge.linux.proc import netns_argv, run

# Not /sys/fs/bpf: `ip netns exec` remounts /sys, hiding it from `tc` run inside the namespace.
BPFFS = Path("/run/fluidedge/bpffs")


def _tc(netns: str | None, *argv: str, check: bool = True) -> str:
    return run(netns_argv(netns, ["tc", *argv]), check=check).stdout


def ensure_bpffs() -> None:
    """A private bpffs for pinning programs while ``tc`` attaches them."""
    if not os.path.ismount(BPFFS):
        BPFFS.mkdir(parents=True, exist_ok=True)
        run(["mount", "-t", "bpf", "bpf", str(BPFFS)])


def attach_bpf(
    netns: str | None, dev: str, hook: str, prog_fd: int, *, pref: str, handle: str
) -> None:
    """Attach (or atomically replace) program ``prog_fd`` on ``dev``'s ``hook`` (``ingress``
    or ``egress`` of clsact) at preference ``pref``, handle ``handle``, in direct-action mode.

    ``tc`` takes a program by a pinned path, not by fd: it is pinned under :data:`BPFFS` for
    the time of the command and unpinned after (the filter keeps its own reference).
    """
    ensure_bpffs()
    with tempfile.TemporaryDirectory(dir=BPFFS, prefix="fluidedge-") as tmp:
        pinned = Path(tmp) / f"{dev}-{hook}"
        pin(prog_fd, pinned)
        _tc(netns, "qdisc", "replace", "dev", dev, "clsact")  # keeps existing filters
        _tc(
            netns, "filter", "replace", "dev", dev, hook, "pref", pref, "handle", handle,
            "bpf", "object-pinned", str(pinned), "da",
        )  # fmt: skip
        pinned.unlink()


def show_filters(netns: str | None, dev: str, hook: str) -> str:
    """``tc filter show dev DEV HOOK``; raises :class:`~fluidedge.linux.proc.CommandError`
    when there is no such device (or no clsact qdisc on it)."""
    return _tc(netns, "filter", "show", "dev", dev, hook)


def show_filters_batch(netns: str | None, targets: Sequence[tuple[str, str]]) -> str:
    """``tc filter show dev DEV HOOK`` of every (device, hook) of ``targets``, in one ``tc
    -batch`` (a periodic check's cost: one process); the listings are concatenated, and one
    that fails (no such device, no clsact) adds nothing and does not stop the others."""
    script = "".join(f"filter show dev {dev} {hook}\n" for dev, hook in targets)
    return run(
        netns_argv(netns, ["tc", "-force", "-batch", "-"]), input_text=script, check=False
    ).stdout


def delete_filter(netns: str | None, dev: str, hook: str, *, pref: str, handle: str) -> None:
    """Delete the bpf filter ``pref``/``handle`` from ``dev``'s ``hook``; a filter (or a
    device) already gone is not an error."""
    _tc(
        netns, "filter", "del", "dev", dev, hook, "pref", pref, "handle", handle, "bpf",
        check=False,
    )  # fmt: skip


def drop_clsact_if_unused(netns: str | None, dev: str) -> None:
    """Delete ``dev``'s clsact qdisc only when neither its ingress nor its egress has a filter
    left: the programs other tools attached there stay."""
    left = _tc(netns, "filter", "show", "dev", dev, "ingress", check=False)
    left += _tc(netns, "filter", "show", "dev", dev, "egress", check=False)
    if not left.strip():
        _tc(netns, "qdisc", "del", "dev", dev, "clsact", check=False)


#: Preference of an isolated bridge port's filters (a service function's leg on a Linux
#: bridge): last, below every program's.
ISOLATION_PREF = "65000"
#: Handles of those filters: the instances part's (plugged isolated) and the chains part's (a
#: plain port it made a function's leg, and gives back).
PLUGGED, CHAINED = "1", "2"
#: The mark the chains' program gives a frame it steers to a function's leg: the only frames
#: an isolated leg's egress lets through (crossing into the function's namespace clears it).
LEG_MARK = 0xC4A1C4A1
_SKF_AD_MARK = 0xFFFFF000 + 20  # classic BPF ancillary load of skb->mark (linux/filter.h)
# Classic BPF, direct action (needs only cls_bpf, which the eBPF programs need anyway; no
# matchall or gact module): ingress, return 2 (TC_ACT_SHOT); egress, TC_ACT_OK (0) if the
# mark is LEG_MARK, else TC_ACT_SHOT.
_DROP_ALL = "1,6 0 0 2"
#: Bridge port flags of an isolated port: no learning, no flooding of any kind to it.
ISOLATED_PORT_FLAGS = (
    *("learning", "off", "flood", "off"),
    *("mcast_flood", "off", "bcast_flood", "off"),
)
_PLAIN_PORT_FLAGS = tuple("on" if word == "off" else word for word in ISOLATED_PORT_FLAGS)
_ONLY_MARKED = f"4,32 0 0 {_SKF_AD_MARK},21 0 1 {LEG_MARK},6 0 0 0,6 0 0 2"


def _bridge_flags(netns: str | None, dev: str, flags: tuple[str, ...]) -> None:
    run(netns_argv(netns, ["bridge", "link", "set", "dev", dev, *flags]))


def isolate(netns: str | None, dev: str, handle: str = PLUGGED) -> None:
    """Take bridge port ``dev`` out of its bridge's reach: everything it receives (what the
    function sends) is dropped at ingress, nothing leaves toward it at egress but what the
    chains' program marked :data:`LEG_MARK`, and the bridge neither learns from it nor floods
    to it (:data:`ISOLATED_PORT_FLAGS`; the flags alone would not stop the bridge device's own
    broadcasts and multicast, the egress filter does). A program at a lower preference that
    takes an ingress frame decides first. ``dev`` must be a port of its bridge already."""
    _tc(netns, "qdisc", "replace", "dev", dev, "clsact")
    for hook, code in (("egress", _ONLY_MARKED), ("ingress", _DROP_ALL)):
        _tc(
            netns, "filter", "replace", "dev", dev, hook, "pref", ISOLATION_PREF,
            "handle", handle, "bpf", "da", "bytecode", code,
        )  # fmt: skip
    _bridge_flags(netns, dev, ISOLATED_PORT_FLAGS)


def unisolate(netns: str | None, dev: str, handle: str = CHAINED) -> None:
    """Undo :func:`isolate`: the bridge's flags back to a plain port's, then ``handle``'s
    filters removed (gone is fine)."""
    _bridge_flags(netns, dev, _PLAIN_PORT_FLAGS)
    for hook in ("ingress", "egress"):
        delete_filter(netns, dev, hook, pref=ISOLATION_PREF, handle=handle)
    drop_clsact_if_unused(netns, dev)


def isolation(filters: str) -> str | None:
    """The handle of :func:`isolate`'s ingress filter in ``tc filter show dev X ingress``
    output (:data:`PLUGGED` or :data:`CHAINED`), or None."""
    if f"bytecode '{_DROP_ALL}'" not in filters:
        return None
    for line in filters.splitlines():
        if f"pref {ISOLATION_PREF} bpf" in line and "handle 0x" in line:
            return str(int(line.split("handle 0x", 1)[1].split()[0], 16))
    return None
