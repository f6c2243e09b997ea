"""Orphans: workloads and resources of ours that the store does not know.

A store restored from an older backup, reset on purpose, or lost leaves running containers,
their cgroups and veths, and shell directories that no row names. Re-adoption never destroys
them: a running workload may be somebody's service, and only an operator can say it is not.
They are found at start (:func:`find_orphans`), logged, listed (``GET /v1/orphans``,
``fluidedge pool orphans``, the ``fluidedge_orphans`` gauge) and kept until an operator removes
them (``DELETE /v1/orphans``, ``fluidedge pool purge --orphans``).

What counts as ours is scoped so that another daemon's resources on the same host are never
touched: containers in this daemon's private runc root (with their cgroups and the veths named
after them), directories under its shell root, and veths with a shell-style name plugged into
one of its networks' bridges.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fluidedge.instances import runc
from fluidedge.instances.models import OrphanView

# Host-side veth names: "<container id>i<index>", the id being "fe" + 10 hex digits.
VETH_NAME = re.compile(r"^(fe[0-9a-f]{10})i\d+$")


def find_orphans(
    containers: dict[str, dict[str, Any]],
    known: set[str],
    shell_dirs: Iterable[Path],
    bridge_ports: dict[str, list[str]],
    known_veths: set[str],
) -> dict[str, OrphanView]:
    """The orphans among what was found, by id.

    ``containers``: ``runc list`` of our root by id; ``known``: container ids the store names;
    ``shell_dirs``: directories under the shell root; ``bridge_ports``: network name -> names
    of the links plugged into its bridge; ``known_veths``: host veth names the store names.
    """
    now = time.time()
    orphans: dict[str, OrphanView] = {}
    veths_of: dict[str, list[str]] = {}
    for ports in bridge_ports.values():
        for port in ports:
            match = VETH_NAME.match(port)
            if match and port not in known_veths:
                veths_of.setdefault(match.group(1), []).append(port)
    dirs = {d.name: d for d in shell_dirs}
    for cid, info in sorted(containers.items()):
        if cid in known:
            continue
        pid = int(info.get("pid") or 0) or None
        orphans[cid] = OrphanView(
            id=cid,
            kind="container",
            reason="a container in our runc root that the store does not know",
            status=str(info.get("status")),
            pid=pid,
            veths=sorted(veths_of.pop(cid, [])),
            cgroups=[str(p) for p in runc.leftover_cgroups(cid)],
            directory=str(dirs.pop(cid)) if cid in dirs else None,
            found_at=now,
        )
    for name, directory in sorted(dirs.items()):
        if name in known:
            continue
        orphans[name] = OrphanView(
            id=name,
            kind="directory",
            reason="a shell directory that the store does not know (no container)",
            veths=sorted(veths_of.pop(name, [])),
            cgroups=[str(p) for p in runc.leftover_cgroups(name)],
            directory=str(directory),
            found_at=now,
        )
    for cid, veths in sorted(veths_of.items()):
        if cid in known:
            continue
        for veth in sorted(veths):
            orphans[veth] = OrphanView(
                id=veth,
                kind="veth",
                reason="a shell veth on one of our bridges that the store does not know",
                found_at=now,
            )
    return orphans
