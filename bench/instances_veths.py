"""The check for instances' veths deleted from outside: its cost each second, and a repair.

``--instances`` instances (500 by default), each with one veth on a linuxbridge network of
their own, under a real instance manager (runc, cgroups, veths). Figures, one invocation:

- **check cost, nothing deleted** (ms per check, ``--rounds`` checks): the part's way,
  ``Manager.revive_veths()`` (the kernel's link announcements read: one ``recv`` per
  namespace), against two baselines that list the namespace's links each check and compare:
  ``linkwatch.list_links`` (one netlink dump of names, the cheapest listing; what the check
  does on its first look and after an overflow) and pyroute2's ``get_links`` (what the
  instances part's other netlink calls use).
  The part runs it every ``switch_check_interval_s`` (1 s).
- **a full listing at scale** (``--links``, 10,000 by default: veth pairs in a namespace of its
  own): what the first look and an overflow cost, names dumped against pyroute2.
- **repair** (ms): an instance's veth deleted (``ip link del``), then the check that makes it
  again (new pair, plugged, the instance end addressed), ``--repairs`` times. The outage is
  this plus the wait for the next check (half the interval on average).

Run as root: ``.venv/bin/python bench/instances_veths.py [--instances 500] [--rounds 50]``.
Everything it makes (instances, bridge, state directory) is removed at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pyroute2 import IPRoute

from fluidedge.core.store import Store
from fluidedge.instances.linkwatch import list_links
from fluidedge.instances.manager import InstancesConfig, Manager
from fluidedge.instances.models import InstanceRequest, NetworkSpec, TemplateSpec
from instances_common import pct

BRIDGE = f"fbv{os.getpid() % 100000}"


def _template() -> TemplateSpec:
    return TemplateSpec.model_validate(
        {
            "name": "vidle",
            "image": "busybox",
            "command": ["/bin/busybox", "sleep", "2147483647"],
            "resources": {"cpus": 0.001, "memory_mb": 8, "pids": 8},
            "readiness": {"kind": "started"},
            "interfaces": [{"name": "eth0", "network": "vnet"}],
            "pool": {"size": 0},
            "mounts": {"sysfs": False, "devpts": False},
        }
    )


def _ms(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--repairs", type=int, default=10)
    parser.add_argument("--links", type=int, default=10000, help="0: no listing at scale")
    args = parser.parse_args()
    logging.disable(logging.ERROR)  # the repairs' own error lines
    workdir = Path(tempfile.mkdtemp(prefix="fe-bench-veths-"))
    manager = Manager(
        InstancesConfig(pool_scale=0, builtin_templates=True),
        Store(workdir / "db.sqlite"),
        workdir / "state",
    )
    manager.start()
    try:
        manager.create_network(NetworkSpec(name="vnet", bridge=BRIDGE))
        manager.create_template(_template())
        for index in range(args.instances):
            octets = f"{10 + index // 250}.{index % 250 + 2}"
            manager.create_instance(
                InstanceRequest.model_validate(
                    {
                        "name": f"v{index}",
                        "template": "vidle",
                        "interfaces": {"eth0": {"addresses": [f"198.18.{octets}/16"]}},
                    }
                )
            )
        owned = {i.host_ifname for inst in manager.instances.values() for i in inst.shell_ifaces}
        manager.revive_veths()  # the first look: the namespace's watch opened, one listing

        def listing() -> None:
            if owned - (list_links(None) or set()):
                raise RuntimeError("a veth is missing")

        def pyroute2_listing() -> None:
            present = {str(link.get_attr("IFLA_IFNAME")) for link in pyroute2.get_links()}
            if owned - present:
                raise RuntimeError("a veth is missing")

        pyroute2 = IPRoute()
        watch, dump, full = [], [], []
        for _ in range(args.rounds):
            watch.append(_ms(manager.revive_veths))
            dump.append(_ms(listing))
            full.append(_ms(pyroute2_listing))
        pyroute2.close()
        repairs = []
        for name in random.sample(sorted(manager.instances), args.repairs):
            iface = manager.instances[name].shell_ifaces[0]
            subprocess.run(["ip", "link", "del", iface.host_ifname], check=True)
            started = time.perf_counter()
            revived = manager.revive_veths()
            repairs.append((time.perf_counter() - started) * 1000)
            if revived != [iface.host_ifname]:
                raise RuntimeError(f"expected {iface.host_ifname} back, got {revived}")
        links = len(list_links(None) or ())
        print(
            f"instances: veths deleted from outside, {args.instances} instances "
            f"({links} links in the namespace), {args.rounds} checks, nothing deleted"
        )
        w50, d50, f50 = pct(watch, 50), pct(dump, 50), pct(full, 50)
        print(f"  check, announcements read (the part's way)  p50 {w50:8.3f}  p99 "
              f"{pct(watch, 99):8.3f} ms")  # fmt: skip
        print(f"  check, names dumped (baseline)              p50 {d50:8.3f}  p99 "
              f"{pct(dump, 99):8.3f} ms")  # fmt: skip
        print(f"  check, pyroute2 get_links (baseline)        p50 {f50:8.3f}  p99 "
              f"{pct(full, 99):8.3f} ms")  # fmt: skip
        print(f"  dumped p50 / announcements p50 = {d50 / w50:.1f}x, "
              f"pyroute2 p50 / announcements p50 = {f50 / w50:.0f}x")  # fmt: skip
        print(f"  repair of one deleted veth ({args.repairs} times)    p50 "
              f"{pct(repairs, 50):8.2f}  max {max(repairs):8.2f} ms")  # fmt: skip
    finally:
        manager.purge()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.links:
        _listing_at_scale(args.links)
    return 0


def _listing_at_scale(count: int) -> None:
    """A full listing (the first look, an overflow's) with ``count`` links: veth pairs in a
    namespace of the bench's own, listed both ways, 3 times each."""
    netns = f"fbv{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        batch = "".join(f"link add va{i} type veth peer name vb{i}\n" for i in range(count // 2))
        subprocess.run(["ip", "-n", netns, "-batch", "-"], input=batch, text=True, check=True)
        ours = [_ms(lambda: list_links(netns)) for _ in range(3)]
        ipr = IPRoute(netns=netns)
        try:
            theirs = [_ms(ipr.get_links) for _ in range(3)]
        finally:
            ipr.close()
        print(f"  a full listing of {count} links: names dumped p50 {pct(ours, 50):8.1f} ms, "
              f"pyroute2 get_links p50 {pct(theirs, 50):8.1f} ms "
              f"({pct(theirs, 50) / pct(ours, 50):.0f}x)")  # fmt: skip
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


if __name__ == "__main__":
    sys.exit(main())
