"""How long a network's ports stay unfiltered after its tables are flushed, one invocation.

The nftables renderer's tables are changed from outside in the bridges' namespace, two ways:
``nft flush ruleset`` (what ``systemctl restart nftables`` runs with Debian's
``/etc/nftables.conf``) deletes them, ``nft flush table inet fesg_n`` empties the inet one's
chains and keeps it. The figure is the ports' unfiltered window: from the kernel's first
announcement of the change (a table's or a rule's deletion) to that of our table's re-creation
(two more ``nft monitor`` timestamp both, no polling), over ``--rounds`` changes of each kind,
each at a random moment of the check's interval:

- ``watch``: the daemon's way since the watcher (:mod:`fluidedge.secgroups.nftwatch`): the
  kernel's announcement of a change to a table of ours by another process (the
  ``NFNLGRP_NFTABLES`` netlink group) wakes the check at once;
- ``periodic``: the baseline, the check alone every ``--interval`` seconds (the default of
  ``[secgroups] check_interval_s``); its figure is about half the interval.

Run as root: ``.venv/bin/python bench/secgroups_heal.py [--rounds 20] [--interval 1.0]``.
Everything runs in namespaces it creates (removed at the end).
"""

from __future__ import annotations

import argparse
import logging
import queue
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.secgroups_net import SgLab, run

from fluidedge.secgroups.model import Rule, SecurityGroup
from fluidedge.secgroups.nft import table_name
from fluidedge.secgroups.nftwatch import NftWatch

SERVER = SecurityGroup(id="srv", rules=(Rule(id="web", direction="ingress", protocol=6),))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Announcements:
    """``nft monitor <kind> <objects>`` in ``netns``: the arrival time of each line naming our
    inet ``table`` (``kind``: ``new`` or ``destroy``; ``objects``: ``tables`` or ``rules``)."""

    def __init__(self, netns: str, kind: str, objects: str, table: str) -> None:
        self.times: queue.Queue[float] = queue.Queue()
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", netns, "nft", "monitor", kind, objects],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._table = table
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        if self.process.stdout is None:
            return
        with self.process.stdout:
            for line in self.process.stdout:
                words = line.split()
                if self._table in words and "inet" in words:
                    self.times.put(time.perf_counter())

    def first_after(self, instant: float) -> float:
        """The first announcement at or after ``instant`` (earlier ones are dropped)."""
        while True:
            when = self.times.get(timeout=30)
            if when >= instant:
                return when

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()
        self._thread.join(timeout=5)


# the change -> (its command's words after ``nft``, what its first announcement deletes)
CHANGES = {
    "flush ruleset": (("flush", "ruleset"), "tables"),
    "flush table": (("flush", "table", "inet", table_name("n")), "rules"),
}


def rounds(lab: SgLab, change: str, count: int, settle: Callable[[], None]) -> list[float]:
    """``count`` changes, each after ``settle()``; ms from the kernel's first announcement of
    the change to that of our table's re-creation (the ports' unfiltered window)."""
    words, objects = CHANGES[change]
    gone = Announcements(lab.switch, "destroy", objects, table_name("n"))
    back = Announcements(lab.switch, "new", "tables", table_name("n"))
    time.sleep(0.3)  # both subscribed
    out = []
    try:
        for _ in range(count):
            settle()
            start = time.perf_counter()
            run("ip", "netns", "exec", lab.switch, "nft", *words)
            deleted = gone.first_after(start)
            out.append((back.first_after(deleted) - deleted) * 1000)
    finally:
        gone.close()
        back.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    logging.getLogger("fluidedge").setLevel(logging.CRITICAL)  # each round logs its re-install

    def settle() -> None:
        """A flush at a random moment of the check's interval, as in the world."""
        time.sleep(random.uniform(0, args.interval))

    lab = SgLab("linuxbridge")
    try:
        lab.network("n", zone=31)
        lab.driver.set_group(SERVER)
        lab.host("s", "n", 1, groups=("srv",), tcp=(80,))
        results: dict[tuple[str, str], list[float]] = {}

        watch = NftWatch(lab.driver.heal)
        watch.watch({lab.switch})
        time.sleep(0.3)
        try:
            for change in CHANGES:
                results[change, "watch"] = rounds(lab, change, args.rounds, settle)
        finally:
            watch.close()

        stop = threading.Event()

        def periodic() -> None:
            while not stop.wait(args.interval):
                lab.driver.heal()

        checker = threading.Thread(target=periodic, daemon=True)
        checker.start()
        try:
            for change in CHANGES:
                results[change, "periodic"] = rounds(lab, change, args.rounds, settle)
        finally:
            stop.set()
            checker.join()
    finally:
        lab.close()

    print(
        "secgroups: ms between the kernel's first announcement of a change to our tables and "
        f"their re-creation (the ports' unfiltered window), {args.rounds} rounds each"
    )
    for change in CHANGES:
        for mode in ("watch", "periodic"):
            values = results[change, mode]
            how = (
                "the kernel's event wakes the check"
                if mode == "watch"
                else f"check every {args.interval:g} s (baseline)"
            )
            label = f"{change}: {how}"
            print(
                f"  {label:<51} p50 {statistics.median(values):8.1f}  p99 {pct(values, 99):8.1f}"
                f"  max {max(values):8.1f}"
            )
        ratio = statistics.median(results[change, "periodic"]) / statistics.median(
            results[change, "watch"]
        )
        print(f"  {change}: periodic p50 / watch p50 = {ratio:.0f}x")


if __name__ == "__main__":
    main()
