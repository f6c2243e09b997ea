"""``ovs-ofctl``/``ovs-appctl`` adapter: flows in atomic bundles, dumps, conntrack flushes.

Every change is one ``ovs-ofctl --bundle add-flows`` with one flow-mod per line (``add``,
``delete_strict`` ...): OpenFlow 1.4 bundles commit all or nothing and a packet traversing
the tables sees either the old or the new set, never a mix (``ovs-ofctl(8)``, ``--bundle``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fluidedge.ovs import tool
from fluidedge.ovs.daemons import OvsDaemons
from fluidedge.ovs.errors import OvsFailure
from fluidedge.ovs.vsctl import check_name

# A flow text may hold only what OpenFlow flow syntax needs: never a newline (one flow-mod
# per line) and nothing a caller could use to smuggle a second command.
_FLOW = re.compile(r"^[A-Za-z0-9_.,:=()/\[\]+\->]+$")
OPENFLOW = "OpenFlow15"


def check_flow(text: str) -> str:
    if not _FLOW.fullmatch(text):
        raise OvsFailure(f"ovs: refusing malformed flow text {text!r}")
    return text


class Ofctl:
    """The flow table of ``bridge`` on the switch ``daemons``."""

    def __init__(self, daemons: OvsDaemons, bridge: str) -> None:
        self.daemons = daemons
        self.bridge = check_name(bridge)

    def _run(self, *args: str, input_text: str | None = None) -> str:
        argv = ["ovs-ofctl", "-O", OPENFLOW, *args]
        return tool.run(argv, self.daemons.env, input_text=input_text, timeout=60.0).stdout

    def bundle(self, mods: Iterable[str]) -> int:
        """Apply flow-mods (``add ...``, ``delete_strict ...``) as one atomic bundle."""
        lines = []
        for mod in mods:
            command, _, flow = mod.partition(" ")
            if command not in ("add", "modify", "modify_strict", "delete", "delete_strict"):
                raise OvsFailure(f"ovs: unknown flow-mod command {command!r}")
            lines.append(f"{command} {check_flow(flow)}")
        if not lines:
            return 0
        self._run(
            "--bundle",
            "add-flows",
            self.daemons.mgmt(self.bridge),
            "-",
            input_text="\n".join(lines) + "\n",
        )
        return len(lines)

    def replace(self, flows: Iterable[str]) -> None:
        """Make the table exactly ``flows`` in one bundle (ovs-ofctl computes the diff)."""
        text = "\n".join(check_flow(flow) for flow in flows) + "\n"
        self._run("--bundle", "replace-flows", self.daemons.mgmt(self.bridge), "-", input_text=text)

    def dump(self, *match: str) -> list[str]:
        """Flows as ``ovs-ofctl dump-flows --no-stats`` prints them (one per line)."""
        text = self._run("--no-stats", "dump-flows", self.daemons.mgmt(self.bridge), *match)
        return [line.strip() for line in text.splitlines() if line.strip() and "reply" not in line]

    def count(self, *match: str) -> int:
        """How many flows match ``match`` (``dump-aggregate``: no flow is printed)."""
        text = self._run("dump-aggregate", self.daemons.mgmt(self.bridge), *match)
        found = re.search(r"\bflow_count=(\d+)", text)
        if found is None:
            raise OvsFailure(f"ovs: dump-aggregate on {self.bridge} said no flow count: {text!r}")
        return int(found[1])

    def port_packets(self) -> dict[int, tuple[int, int]]:
        """OpenFlow port number -> (packets received from it, packets sent to it), the
        datapath's live counters (``dump-ports``)."""
        text = self._run("dump-ports", self.daemons.mgmt(self.bridge))
        out: dict[int, tuple[int, int]] = {}
        for block in re.split(r"\n\s*port\s+", "\n" + text)[1:]:
            number = re.match(r"\s*(\d+):", block)
            rx = re.search(r"rx pkts=(\d+)", block)
            tx = re.search(r"tx pkts=(\d+)", block)
            if number and rx and tx:
                out[int(number[1])] = (int(rx[1]), int(tx[1]))
        return out

    def dump_stats(self, *match: str) -> list[str]:
        """Flows matching ``match`` with their counters (``n_packets``, ``n_bytes``)."""
        text = self._run("dump-flows", self.daemons.mgmt(self.bridge), *match)
        return [line.strip() for line in text.splitlines() if "table=" in line]

    def dump_with_stats(self) -> list[str]:
        text = self._run("dump-flows", self.daemons.mgmt(self.bridge))
        return [line.strip() for line in text.splitlines() if "table=" in line]


def flush_conntrack(daemons: OvsDaemons, zone: int | None = None, tuple_: str = "") -> None:
    """Delete conntrack entries of the switch's datapath: a zone, optionally one (partial)
    original-direction tuple in it (``ct_nw_src=...,ct_nw_proto=6,ct_tp_dst=80``)."""
    args = ["ovs-appctl", "-t", str(daemons.vswitchd_ctl), "dpctl/flush-conntrack"]
    if zone is not None:
        args.append(f"zone={int(zone)}")
    if tuple_:
        args.append(check_flow(tuple_))
    tool.run(args, daemons.env)


def conntrack(daemons: OvsDaemons, zone: int | None = None) -> list[str]:
    """Conntrack entries of the switch's datapath (``dpctl/dump-conntrack``)."""
    args = ["ovs-appctl", "-t", str(daemons.vswitchd_ctl), "dpctl/dump-conntrack"]
    if zone is not None:
        args.append(f"zone={int(zone)}")
    return [line for line in tool.run(args, daemons.env).stdout.splitlines() if line.strip()]
