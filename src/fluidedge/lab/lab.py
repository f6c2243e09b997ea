"""The lab's Python API: ``Lab.up(...)`` / ``Lab.attach(prefix)`` / ``lab.down()``.

A :class:`Lab` is a handle on a lab that is up, rebuilt from its state record, so the CLI, the
daemon, tests and the demo all see the same thing. Properties give everything a TOF or a test
needs to know: namespace names, the host's S1 interfaces, addresses, bearers.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from fluidedge.lab import build
from fluidedge.lab.config import Bearer, Flavour, LabConfig, Mode, load, with_overrides
from fluidedge.lab.errors import LabConfigError
from fluidedge.lab.state import LabState, process_alive, run_dir
from fluidedge.lab.topology import (
    APPS_BRIDGE,
    GEN_IF,
    HOST_ENB_IF,
    HOST_SGW_IF,
    S1_IF,
    Topology,
)

DEFAULT_PREFIX = "fe"


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    netns: str
    pid: int
    alive: bool


class Lab:
    """A lab that is up (or half up: ``phase`` says)."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self.config = LabConfig.model_validate(state.config)
        self.topology = Topology(self.config, state.prefix)

    # --- life cycle ----------------------------------------------------------------------
    @classmethod
    def up(
        cls,
        config: LabConfig | Path | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        mode: Mode | None = None,
        pdu_session_container: bool | None = None,
        flavour: Flavour | None = None,
    ) -> Lab:
        """Bring a lab up (the embedded default of ``flavour`` when ``config`` is None); refuse
        if up."""
        cfg = config if isinstance(config, LabConfig) else load(config, flavour=flavour)
        cfg = with_overrides(
            cfg, mode=mode, pdu_session_container=pdu_session_container, flavour=flavour
        )
        return cls(build.up(cfg, prefix))

    @classmethod
    def attach(cls, prefix: str = DEFAULT_PREFIX) -> Lab:
        """The lab ``prefix`` that is up, or :class:`~fluidedge.lab.LabNotUpError`."""
        return cls(build.require(prefix))

    def down(self) -> list[str]:
        """Remove everything of this lab (idempotent); returns what was removed."""
        return build.down(self.prefix)

    # --- what a test or a TOF needs ------------------------------------------------------
    @property
    def prefix(self) -> str:
        return self.state.prefix

    @property
    def mode(self) -> Mode:
        return self.config.lab.mode

    @property
    def flavour(self) -> Flavour:
        return self.config.lab.flavour

    @property
    def run_dir(self) -> Path:
        return run_dir(self.prefix)

    @property
    def namespaces(self) -> list[str]:
        return list(self.state.namespaces)

    def ns(self, node: str) -> str:
        """Namespace of a node (``ue1``, ``enb1``, ``sgw2``, ``pdn``, ``host``, ``app1``...)."""
        name = self.topology.ns(node)
        if name not in self.state.namespaces:
            raise LabConfigError(f"lab {self.prefix!r} has no node {node!r}")
        return name

    @property
    def host_ns(self) -> str:
        return self.topology.host_ns

    @property
    def ran_ns(self) -> str:
        return self.topology.ran_ns

    @property
    def core_ns(self) -> str:
        return self.topology.core_ns

    enb_side_if = HOST_ENB_IF
    sgw_side_if = HOST_SGW_IF
    apps_bridge = APPS_BRIDGE
    node_s1_if = S1_IF
    gen_if = GEN_IF

    @property
    def apps_gateway(self) -> IPv4Address:
        return self.config.apps.gateway

    @property
    def apps_subnet(self) -> str:
        return str(self.config.apps.subnet)

    @property
    def apps(self) -> dict[str, IPv4Address]:
        return {a.name: a.address for a in self.config.app}

    @property
    def pdn_address(self) -> IPv4Address:
        return self.config.pdn.address

    @property
    def pdn_address6(self) -> IPv6Address | None:
        """The PDN host's IPv6 address when UEs are dual-stack (``ue_pool.subnet6``)."""
        return self.topology.pdn_address6 if self.topology.ipv6 else None

    @property
    def ues6(self) -> dict[str, IPv6Address]:
        """IPv6 address of each dual-stack UE (empty when the lab is IPv4 only)."""
        return {b.ue: b.ue_address6 for b in self.bearers if b.ue_address6 is not None}

    @property
    def pdn_dns_address(self) -> IPv4Address:
        """The PDN's DNS server (``[pdn.dns]``): the core's resolver the UEs are given."""
        return self.config.pdn.dns.address

    @property
    def pdn_dns_address6(self) -> IPv6Address | None:
        """The PDN's DNS server's IPv6 address when UEs are dual-stack."""
        return self.topology.pdn_dns_address6

    def pdn_dns_stats(self) -> dict[str, int]:
        """The PDN's DNS server's counters by outcome (``fluidedge.lab.dns.OUTCOMES``); they
        are written before each answer is sent."""
        raw = json.loads((self.run_dir / "pdn.dns.json").read_text())
        return {str(k): int(v) for k, v in raw.items()}

    @property
    def pdn_http_port(self) -> int:
        return self.config.pdn.http_port

    @property
    def pdn_udp_echo_port(self) -> int:
        return self.config.pdn.udp_echo_port

    @property
    def ues(self) -> dict[str, IPv4Address]:
        """Each UE's address (osmo flavour: the one the GGSN assigned at the latest attach)."""
        return {b.ue: b.ue_address for b in self.bearers}

    @property
    def enbs(self) -> dict[str, IPv4Address]:
        return {e.name: e.address for e in self.config.enb}

    @property
    def sgws(self) -> dict[str, IPv4Address]:
        return {s.name: s.address for s in self.config.sgw}

    @property
    def mmes(self) -> dict[str, IPv4Address]:
        return {m.name: m.address for m in self.config.mme}

    @property
    def bearers(self) -> tuple[Bearer, ...]:
        """The bearer table. Osmo flavour: UE addresses as attached now; TEIDs are 0 (the GGSN
        and sgsnemu allocate them; the TOF's ``/tunnels`` shows them)."""
        if not self.topology.osmo:
            return self.topology.bearers
        out = []
        for b in self.topology.bearers:
            address = self._attached_address(b.enb)
            out.append(replace(b, ue_address=address or b.ue_address, ul_teid=0, dl_teid=0))
        return tuple(out)

    def _attached_address(self, sgsn: str) -> IPv4Address | None:
        try:
            raw = json.loads((self.run_dir / f"{sgsn}.ready").read_text())
        except (OSError, ValueError):
            return None
        return IPv4Address(str(raw["address"]))

    def reattach(self, ue: str, *, delete: bool = True) -> IPv4Address:
        """Osmo flavour: detach ``ue`` (``delete``: Delete PDP Context; else its sgsnemu is
        killed, as on radio loss) and attach it again; returns the new UE address."""
        address = IPv4Address(build.reattach(self.prefix, ue, delete=delete))
        self.state = build.require(self.prefix)
        return address

    def bearer(self, ue: str) -> Bearer:
        for b in self.bearers:
            if b.ue == ue:
                return b
        raise LabConfigError(f"lab {self.prefix!r} has no UE {ue!r}")

    # --- running things inside ------------------------------------------------------------
    def argv(self, node: str, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed to run inside ``node``'s namespace."""
        return ["ip", "netns", "exec", self.ns(node), *argv]

    def run(
        self, node: str, argv: Sequence[str], *, timeout: float = 30.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (no shell) in ``node``'s namespace and capture its output."""
        return subprocess.run(
            self.argv(node, argv), capture_output=True, text=True, timeout=timeout, check=check
        )

    def spawn(self, node: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the background in ``node``'s namespace (e.g. a ping loop for the
        demo). Stop it yourself; ``down`` kills whatever still runs in the lab anyway."""
        return subprocess.Popen(
            self.argv(node, argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def processes(self) -> list[ProcessStatus]:
        return [
            ProcessStatus(p.name, p.netns, p.pid, process_alive(p.pid, p.start_time))
            for p in self.state.processes
        ]
