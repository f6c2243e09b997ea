"""Re-adoption at start, and the orphans it finds: the store against what runs.

Whether a container still runs its waiting launcher (and not a workload) is an identity
check, not a guess from the command line: the per-shell token and the launcher binary
(:func:`fluidedge.instances.launcher.is_waiting_launcher`).

Consistency: a shell's row is stored before ``runc create``; taking a shell turns its row into
the instance's row in one transaction before the process is released. On start the manager
re-adopts what the store and ``runc list`` agree on, and cleans up what the store names but
never ran a workload (a shell that cannot be re-used, an instance claimed but never released).
It never destroys what the store does not know, nor a shell row's container that runs a
workload (a store restored from an older backup): those are orphans
(:mod:`fluidedge.instances.orphans`), logged and kept until an operator purges them.

The decisions (:func:`instance_status`, :func:`shell_fate`) are pure; :func:`restore` and
:func:`purge_orphans` apply them to the manager's runtime, store and memory.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from fluidedge.instances import network
from fluidedge.instances.errors import InstanceNotFound, RuntimeFailure
from fluidedge.instances.images import overlay
from fluidedge.instances.launcher import GO_FIFO, file_id, launcher_waiting
from fluidedge.instances.models import OrphanView
from fluidedge.instances.nl import NetlinkSocket
from fluidedge.instances.orphans import find_orphans
from fluidedge.instances.pool import Pool
from fluidedge.instances.records import Instance, Shell

if TYPE_CHECKING:
    from fluidedge.instances.manager import Manager

log = logging.getLogger("fluidedge.instances")

Fate = Literal["pool", "forget", "destroy"]


def instance_status(found: dict[str, Any] | None, waiting: bool) -> str | None:
    """The runtime status an instance row is re-adopted with: ``running``/``paused`` (its
    workload runs), ``created`` (claimed, never released: same as a crash before release) or
    None (gone)."""
    status = found.get("status") if found else None
    if status == "running" and waiting:
        return "created"
    return None if status is None else str(status)


def shell_fate(
    shell: Shell,
    found: dict[str, Any] | None,
    *,
    waiting: bool,
    fifo: bool,
    template_known: bool,
) -> Fate:
    """What to do with a shell row: back into its pool, forget the row (its container runs a
    workload: the store is older than the claim, never destroy it), or destroy it."""
    # A pooled shell is a running container whose launcher waits on its go FIFO.
    if (
        shell.state == "ready"
        and found is not None
        and found.get("status") == "running"
        and int(found.get("pid") or 0) == shell.pid
        and waiting
        and fifo
        and template_known
    ):
        return "pool"
    if found is not None and found.get("status") in ("running", "paused") and not waiting:
        return "forget"
    return "destroy"


Held = TypeVar("Held", Instance, Shell)


def _kept_here(held: Held, root: Path) -> Held:
    """``held`` if what its row names is what this daemon makes for its container id: its
    directory ``root/<id>``, its host-side veths ``<id>i<n>`` (ValueError otherwise: the row
    is set aside, never used). A destroy removes that directory and deletes those links: a
    damaged row must not point it at ``/etc`` or the host's ``eth0``."""
    directory = held.directory
    if directory.name != held.id or directory.parent.resolve() != root.resolve():
        raise ValueError(f"directory {str(directory)!r} is not {str(root / held.id)!r}")
    ifaces = held.ifaces if isinstance(held, Shell) else held.shell_ifaces
    for iface in ifaces:
        if not re.fullmatch(re.escape(held.id) + "i[0-9]+", iface.host_ifname):
            raise ValueError(f"host interface {iface.host_ifname!r} is not one of {held.id}'s")
    return held


def restore(mgr: Manager) -> None:
    """Re-adopt instances and pooled shells; record orphans."""
    io = mgr.runc_io()
    containers = {c["id"]: c for c in io.runc.list()}
    binary = file_id(io.launcher_path)  # the C launcher (its identity, with each row's token)
    known: set[str] = set()
    for inst in mgr.tables.stored_instances(
        lambda doc: _kept_here(Instance.from_record(doc), mgr.shell_root)
    ):
        known.add(inst.id)
        found = containers.get(inst.id)
        waiting = found is not None and launcher_waiting(int(found["pid"]), inst.token, binary)
        status = instance_status(found, waiting)
        if status in ("running", "paused"):
            inst.pid = int(found["pid"]) if found else inst.pid
            with contextlib.suppress(RuntimeFailure):
                inst.state = "paused" if io.cgroups.frozen(inst.id) else "running"
            # The last daemon may have stopped between an answer and the instance's leaving
            # the idle class it started in (fluidedge.instances.shell.IDLE_START).
            with contextlib.suppress(RuntimeFailure):
                if io.cgroups.has_cpu_idle and io.cgroups.cpu_idle(inst.id):
                    io.answered(inst.id, inst.resources.cpus)
        else:
            # Crashed before release, or the workload died while we were away.
            if status == "created":
                with contextlib.suppress(RuntimeFailure):
                    io.runc.delete(inst.id)
            inst.state = "exited"
            inst.pid = None
        mgr.instances[inst.name] = inst
        mgr.reserve(inst)
        mgr.tables.put_instance(inst.record())
    for shell in mgr.tables.stored_shells(
        lambda doc: _kept_here(Shell.from_info(doc), mgr.shell_root)
    ):
        known.add(shell.id)
        found = containers.get(shell.id)
        fate = shell_fate(
            shell,
            found,
            waiting=(
                launcher_waiting(int(found.get("pid") or 0), shell.token, binary)
                if found
                else False
            ),
            fifo=(shell.directory / "assign" / GO_FIFO).exists(),
            template_known=shell.template in mgr.templates,
        )
        if fate == "pool":
            try:
                shell.nl = NetlinkSocket.open_in(f"/proc/{shell.pid}/ns/net")
                shell.idle = io.cgroups.has_cpu_idle and io.cgroups.cpu_idle(shell.id)
                if shell.idle and not io.cgroups.idle_start:  # idle, and no daemon beside it
                    io.answered(shell.id, mgr.templates[shell.template].resources.cpus)
                    shell.idle = False
            except (OSError, RuntimeFailure):
                fate = "destroy"
        if fate == "pool":
            mgr.pools.setdefault(shell.template, Pool()).ready.append(shell)
        elif fate == "forget":
            mgr.tables.delete_shell(shell.id)
            known.discard(shell.id)
        else:
            mgr.destroy_shell(shell)
    _find_orphans(mgr, containers, known)
    log.info(
        "re-adopted %d instance(s) and %d pooled shell(s); %d orphan(s) kept",
        len(mgr.instances),
        sum(len(p.ready) for p in mgr.pools.values()),
        len(mgr.orphans),
        extra={"part": "instances", "event": "readopted", "ids": ",".join(mgr.instances)},
    )


def _find_orphans(mgr: Manager, containers: dict[str, dict[str, Any]], known: set[str]) -> None:
    """Record (and log) what is ours but unknown to the store; destroy none of it."""
    known_veths = {i.host_ifname for x in mgr.instances.values() for i in x.interfaces}
    known_veths |= {i.host_ifname for p in mgr.pools.values() for x in p.ready for i in x.ifaces}
    ports: dict[str, list[str]] = {}
    for spec in mgr.networks.values():
        with contextlib.suppress(RuntimeFailure):
            ports[spec.name] = network.bridge_ports(spec)
    shell_root = mgr.shell_root
    dirs = list(shell_root.iterdir()) if shell_root.is_dir() else []
    mgr.orphans = find_orphans(containers, known, dirs, ports, known_veths)
    for orphan in mgr.orphans.values():
        log.warning(
            "orphan kept: kind=%s id=%s status=%s pid=%s veths=%s reason=%s",
            orphan.kind,
            orphan.id,
            orphan.status,
            orphan.pid,
            ",".join(orphan.veths) or "-",
            orphan.reason,
            extra={"part": "instances", "event": "orphan_found", "ids": orphan.id},
        )


def purge_orphans(mgr: Manager, ids: list[str] | None = None) -> list[str]:
    """Destroy orphans (all, or those named): their container, veths, cgroups, directory."""
    with mgr.lock:
        if ids is None:
            chosen: list[OrphanView] = list(mgr.orphans.values())
        else:
            missing = [i for i in ids if i not in mgr.orphans]
            if missing:
                raise InstanceNotFound(f"no orphan named {', '.join(missing)}")
            chosen = [mgr.orphans[i] for i in ids]
    io = mgr.runc_io()
    purged = []
    for orphan in chosen:
        netns_of = {spec.name: spec.netns for spec in mgr.networks.values()}
        veths = [*orphan.veths, *([orphan.id] if orphan.kind == "veth" else [])]
        if orphan.kind == "container":
            with contextlib.suppress(RuntimeFailure):
                io.cgroups.thaw(orphan.id, timeout=0.5)
            io.runc.delete(orphan.id)
        for veth in veths:
            for netns in set(netns_of.values()):
                network.unplug(netns, veth)
        if orphan.kind != "veth":
            io.cgroups.remove(orphan.id)
        if orphan.kind != "veth":
            with contextlib.suppress(OSError):
                overlay.unmount(io.roots / orphan.id)  # its overlay root, if it had one
        if orphan.directory:
            shutil.rmtree(orphan.directory, ignore_errors=True)
        with mgr.lock:
            mgr.orphans.pop(orphan.id, None)
        log.warning(
            "orphan purged: kind=%s id=%s",
            orphan.kind,
            orphan.id,
            extra={"part": "instances", "event": "orphan_purged", "ids": orphan.id},
        )
        purged.append(orphan.id)
    return purged
