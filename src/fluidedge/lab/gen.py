"""Benchmark traffic: GTP-U streams built from the lab's bearers, replayed at line rate.

:meth:`Generator.write_streams` writes pcaps of uplink G-PDUs (eNB -> SGW, each bearer's
uplink TEID; plain or with a PDU Session Container) at frame sizes 64/256/1024/1518 and iMIX.
:meth:`Generator.offer` replays one into the S1 segment from the eNB side with trafgen (or
tcpreplay) for a while and counts what arrives at the SGWs, so a TOF's throughput can be
measured without the Python emulators in the path.

Where the frames go in and out:

- in: the generator transmits (AF_PACKET) on ``host`` in the ``ran`` namespace, the eNB-side
  bridge's port whose peer is the host's ``s1enb``: frames go straight onto the S1 link into
  the host without crossing the bridge (3x the rate of injecting through a bridge port here),
  and the bridge never learns their source MAC. Frames carry that port's MAC as source and
  the eNBs' IP addresses.
- out: every SGW's S1 interface has, during an offer, a netdev-ingress nftables rule that
  counts and drops generator frames (outer DSCP CS1 to UDP 2152), so they cost the SGW
  namespace almost nothing and the Python SGW never sees them.

Frame sizes follow RFC 2544: they include the 4-byte FCS. A G-PDU carrying IPv4/UDP cannot be
64 bytes (the smallest is 82, 90 with a PDU Session Container): smaller sizes are raised to the
smallest valid frame, and each stream reports the sizes it really holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import IO, Literal

from fluidedge.codec.gtpu import GTPU_PORT, PDU_TYPE_UL, PduSessionContainer, encode_gpdu
from fluidedge.codec.net import ethernet, ipv4, udp
from fluidedge.codec.stack import encapsulate, ethernet_frame
from fluidedge.lab.config import Bearer
from fluidedge.lab.errors import LabConfigError, LabSystemError
from fluidedge.lab.lab import Lab
from fluidedge.lab.live import interface_counters
from fluidedge.lab.nftsink import install_sink, list_sink, remove_sink, rule_counters
from fluidedge.lab.packets import read_pcap, write_pcap

FRAME_SIZES = (64, 256, 1024, 1518)
IMIX = ((64, 7), (594, 4), (1518, 1))  # "simple iMIX": 7:4:1
# The same 7:4:1 mix with the large frames spread out rather than in runs.
IMIX_SEQUENCE = (64, 594, 64, 594, 64, 1518, 64, 594, 64, 594, 64, 64)
FCS = 4
GEN_TOS = 0x20  # DSCP CS1: marks generator frames so the far side counts only them
SINK_TABLE = "fluidedge_gen"
INNER_DPORT = 9  # discard
WARM_UP = 0.3
Tool = Literal["auto", "trafgen", "tcpreplay"]
CountAt = Literal["sgw", "host"]


@dataclass(frozen=True)
class Stream:
    name: str
    pcap: Path
    frames: int
    sizes: tuple[int, ...]  # distinct frame sizes it holds, FCS included

    @property
    def sizes_text(self) -> str:
        return "/".join(str(s) for s in self.sizes)


@dataclass(frozen=True)
class OfferResult:
    """What one offer did. ``pps`` is the steady-state arrival rate at the far side."""

    sent: int  # frames the generator tool reports sent
    received: int  # generator frames counted at the SGWs' S1 ingress
    duration: float  # seconds of the steady-state window
    pps: float  # received per second in that window
    offered_pps: float  # sent per second in that window

    @property
    def loss(self) -> float:
        return 0.0 if self.sent == 0 else max(0.0, 1.0 - self.received / self.sent)


def _mac_of(ns: str, dev: str) -> bytes:
    result = subprocess.run(
        ["ip", "-n", ns, "-j", "link", "show", "dev", dev],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise LabSystemError(f"cannot read the MAC of {ns}/{dev}: {result.stderr.strip()}")
    return ethernet.mac(json.loads(result.stdout)[0]["address"])


def gpdu_frame(
    bearer: Bearer,
    *,
    size: int,
    dst_mac: bytes,
    src_mac: bytes,
    inner_dst: IPv4Address,
    psc: bool,
    ident: int = 0,
) -> bytes:
    """One uplink G-PDU frame of ``size`` bytes (FCS included; raised to the minimum)."""
    exts = (PduSessionContainer(pdu_type=PDU_TYPE_UL, qfi=bearer.qfi),) if psc else ()
    gtp_overhead = 16 if psc else 8
    fixed = 14 + 20 + 8 + gtp_overhead + 20 + 8
    pad = max(0, size - FCS - fixed)
    ue, dst = bearer.ue_address.packed, inner_dst.packed
    inner_udp = udp.encode(ue, dst, 10000 + ident % 1000, INNER_DPORT, bytes(pad))
    inner = ipv4.encode(
        ue, dst, udp.PROTO_UDP, inner_udp, identification=ident & 0xFFFF, dont_fragment=True
    )
    gtp = encode_gpdu(bearer.ul_teid, inner, extensions=exts)
    outer = encapsulate(
        bearer.enb_address.packed,
        bearer.sgw_address.packed,
        gtp,
        tos=GEN_TOS,
        identification=ident & 0xFFFF,
    )
    return ethernet_frame(dst_mac, src_mac, outer)


_SENT_PATTERNS = (
    re.compile(r"(\d+) packets outgoing"),  # trafgen
    re.compile(r"Actual: (\d+) packets"),  # tcpreplay
)


def _tool_count(output: str) -> int | None:
    """Frames the tool says it sent (its exit statistics), or None if it did not say."""
    for pattern in _SENT_PATTERNS:
        found = pattern.findall(output)
        if found:
            return sum(int(n) for n in found)
    return None


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT the tool's process group, then SIGKILL it if it lingers; reap the leader."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no forked worker outlives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


class Generator:
    """Streams and offers for one lab."""

    def __init__(self, lab: Lab) -> None:
        if lab.flavour != "emulated":
            raise LabConfigError(
                f"lab {lab.prefix!r}: the generator needs the emulated flavour (its counters "
                "and TEID table); the osmo flavour's TEIDs are allocated at attach time"
            )
        self.lab = lab
        self._host_base = 0
        self.src_mac = _mac_of(lab.ran_ns, lab.gen_if)
        if lab.mode == "routed":
            hop = _mac_of(lab.host_ns, lab.enb_side_if)
            self.dst_macs = dict.fromkeys(lab.sgws, hop)
        else:
            self.dst_macs = {s: _mac_of(lab.ns(s), lab.node_s1_if) for s in lab.sgws}

    def frames(self, sizes: tuple[int, ...], *, psc: bool) -> list[bytes]:
        """One frame per bearer per entry of ``sizes``, bearers interleaved."""
        out = []
        for i, size in enumerate(sizes):
            for b in self.lab.bearers:
                out.append(
                    gpdu_frame(
                        b,
                        size=size,
                        dst_mac=self.dst_macs[b.sgw],
                        src_mac=self.src_mac,
                        inner_dst=self.lab.pdn_address,
                        psc=psc,
                        ident=i,
                    )
                )
        return out

    def write_streams(self, out_dir: Path | None = None) -> list[Stream]:
        """Write every stream's pcap (plain and PSC x 64/256/1024/1518/iMIX)."""
        directory = out_dir or self.lab.run_dir / "gen"
        directory.mkdir(parents=True, exist_ok=True)
        streams = []
        for psc in (False, True):
            kind = "psc" if psc else "plain"
            variants: list[tuple[str, tuple[int, ...]]] = [(str(s), (s,)) for s in FRAME_SIZES]
            variants.append(("imix", IMIX_SEQUENCE))
            for label, sizes in variants:
                frames = self.frames(sizes, psc=psc)
                path = directory / f"gtpu-{kind}-{label}.pcap"
                write_pcap(path, frames)
                real = tuple(sorted({len(f) + FCS for f in frames}))
                streams.append(Stream(f"{kind}-{label}", path, len(frames), real))
        return streams

    # --- offering ------------------------------------------------------------------------
    def _sink_netns(self) -> list[str]:
        return [self.lab.ns(s) for s in self.lab.sgws]

    def _install_sinks(self) -> None:
        for name, address in self.lab.sgws.items():
            ns = self.lab.ns(name)
            self._remove_sink(ns)
            # Count only frames for this SGW: a bridge that has not learned a MAC yet floods.
            rules = [
                f"ip daddr {address} ip dscp cs1 udp dport {GTPU_PORT} counter drop",
                f"ip dscp cs1 udp dport {GTPU_PORT} drop",
            ]
            result = install_sink(ns, SINK_TABLE, self.lab.node_s1_if, rules)
            if result.returncode != 0:
                raise LabSystemError(f"nft sink in {ns}: {result.stderr.strip()}")

    def _remove_sink(self, ns: str) -> None:
        remove_sink(ns, SINK_TABLE)

    def received(self, count_at: CountAt = "sgw") -> int:
        """Generator frames counted so far at the SGWs' S1 ingress (``count_at="sgw"``), or
        all frames received by the host's eNB-side S1 interface (``"host"``)."""
        if count_at == "host":
            c = interface_counters(self.lab.host_ns, [self.lab.enb_side_if])
            return int(c.get(self.lab.enb_side_if, {}).get("rx_packets", 0)) - self._host_base
        total = 0
        for ns in self._sink_netns():
            result = list_sink(ns, SINK_TABLE)
            if result.returncode != 0:
                continue
            total += sum(rule_counters(result.stdout))
        return total

    def sent(self) -> int:
        c = interface_counters(self.lab.ran_ns, [self.lab.gen_if]).get(self.lab.gen_if, {})
        return int(c.get("tx_packets", 0)) + int(c.get("tx_dropped", 0))

    def _tool_argv(self, pcap: Path, pps: int | None, tool: Tool) -> list[str]:
        dev = self.lab.gen_if
        if tool == "auto":
            # trafgen is the fastest at full rate, but its --rate sends once-a-second bursts;
            # tcpreplay paces evenly.
            tool = "trafgen" if pps is None else "tcpreplay"
        if tool == "trafgen":
            cfg = pcap.with_suffix(".trafgen")
            blocks = []
            for _, frame in read_pcap(pcap):
                blocks.append("{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }")
            cfg.write_text("\n".join(blocks) + "\n")
            argv = ["trafgen", "-o", dev, "-i", str(cfg), "-P", "1"]
            # Leave host-wide settings alone (socket memory sysctls, IRQ affinity).
            argv += ["--no-sock-mem", "--notouch-irq", "--no-cpu-stats"]
            if pps is not None:
                argv += ["-b", f"{pps}pps"]
            return argv
        if tool == "tcpreplay":
            argv = ["tcpreplay", "-i", dev, "-q", "--preload-pcap", "--loop=0"]
            argv += [f"--pps={pps}"] if pps is not None else ["--topspeed"]
            return [*argv, str(pcap)]
        raise LabConfigError(f"unknown generator tool {tool!r} (trafgen or tcpreplay)")

    def offer(
        self,
        pcap: Path,
        *,
        pps: int | None = None,
        duration: float = 2.0,
        tool: Tool = "auto",
        count_at: CountAt = "sgw",
    ) -> OfferResult:
        """Replay ``pcap`` in a loop into the S1 segment for ``duration`` s (``pps`` None = max).

        Returns frames sent, frames received at the SGWs, and the steady-state arrival rate
        (measured after a short warm-up so tool start-up does not count). ``tool="auto"``
        uses trafgen at full rate and tcpreplay when paced (trafgen's pacing is bursty).
        ``count_at="host"`` counts arrivals at the host's eNB-side interface instead (what a
        TOF would be offered; the generator's ceiling when nothing forwards).
        """
        if duration <= 0:
            raise LabConfigError("duration must be positive")
        argv = self.lab.argv("ran", self._tool_argv(pcap, pps, tool))
        self._install_sinks()
        self._host_base = 0
        if count_at == "host":
            self._host_base = self.received("host")
        with tempfile.TemporaryFile() as log:
            return self._run_offer(argv, log, tool, duration, count_at)

    def _run_offer(
        self, argv: list[str], log: IO[bytes], tool: str, duration: float, count_at: CountAt
    ) -> OfferResult:
        try:
            sent0 = self.sent()
            # Own session: trafgen forks workers, and the whole group must stop with it.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                time.sleep(WARM_UP)
                if proc.poll() is not None:
                    log.seek(0)
                    out = log.read().decode(errors="replace")
                    raise LabSystemError(f"{tool} exited: {out.strip()[-500:]}")
                r0, s0, t0 = self.received(count_at), self.sent(), time.monotonic()
                time.sleep(duration)
                r1, s1, t1 = self.received(count_at), self.sent(), time.monotonic()
            finally:
                stop_group(proc)
            time.sleep(0.1)  # let the last frames land
            received = self.received(count_at)
            log.seek(0)
            sent = _tool_count(log.read().decode(errors="replace"))
            if sent is None:  # fall back on the port's counters (includes a few bridge frames)
                sent = self.sent() - sent0
        finally:
            for ns in self._sink_netns():
                self._remove_sink(ns)
        window = t1 - t0
        return OfferResult(
            sent=sent,
            received=received,
            duration=window,
            pps=(r1 - r0) / window,
            offered_pps=(s1 - s0) / window,
        )
