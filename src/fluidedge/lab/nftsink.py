"""nftables ingress sinks: count (and drop) benchmark frames where they arrive.

A sink is a ``netdev`` table with one chain on an interface's ingress hook, at priority -500
so it runs before anything else sees the frame: the namespace behind it spends almost nothing
on generator traffic and the Python nodes never see it. The lab's generator puts one on every
SGW (:mod:`fluidedge.lab.gen`), the data-plane benchmark one on the edge app it offloads to
(:mod:`fluidedge.measure.labsource`). These helpers only run ``nft`` and read its output;
what a failure means (and which error it raises) is the caller's business.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence


def nft_in(
    ns: str, argv: Sequence[str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``nft argv`` inside namespace ``ns``; output captured, a failure is not raised."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, "nft", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def sink_table(table: str, device: str, rules: Sequence[str]) -> str:
    """nft script for netdev table ``table``: one ingress chain on ``device`` with ``rules``."""
    body = "".join(f"    {rule}\n" for rule in rules)
    return (
        f"table netdev {table} {{\n"
        f"  chain sink {{\n"
        f"    type filter hook ingress device {device} priority -500;\n"
        f"{body}"
        f"  }}\n"
        f"}}\n"
    )


def install_sink(
    ns: str, table: str, device: str, rules: Sequence[str]
) -> subprocess.CompletedProcess[str]:
    """Load :func:`sink_table` in ``ns`` (check ``returncode``; ``stderr`` says why)."""
    return nft_in(ns, ["-f", "-"], stdin=sink_table(table, device, rules))


def remove_sink(ns: str, table: str) -> None:
    """Delete netdev table ``table`` in ``ns`` if it exists."""
    nft_in(ns, ["delete", "table", "netdev", table])


def list_sink(ns: str, table: str) -> subprocess.CompletedProcess[str]:
    """``nft -j list`` of netdev table ``table`` (parse ``stdout`` with :func:`rule_counters`)."""
    return nft_in(ns, ["-j", "list", "table", "netdev", table])


def rule_counters(listing_json: str) -> list[int]:
    """Packets of each rule's first counter, in rule order, from ``nft -j list`` output."""
    counts: list[int] = []
    for item in json.loads(listing_json).get("nftables", []):
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                counts.append(int(expr["counter"]["packets"]))
                break
    return counts
