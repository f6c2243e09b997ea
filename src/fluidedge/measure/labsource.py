"""The real :class:`~fluidedge.measure.dataplane.TrafficSource`: the lab's GTP-U generator.

Scenarios map to labs: ``kernel`` is a lab in ``routed`` mode (the host namespace forwards with
plain Linux IP forwarding: the baseline); ``passthrough`` and ``offloaded`` are one lab in ``tof``
mode with a TOF backend (``userspace``, or ``fastpath``: the tc/eBPF program forwards in the
kernel) running in the lab's host namespace (in this process), without and with
a service whose service IP is the generated frames' inner destination (the PDN) and whose
application is the lab's first edge app. Frames come from :class:`fluidedge.lab.gen.Generator`
(plain uplink G-PDUs, every bearer, the requested size or iMIX) and are counted where they
arrive: the SGWs' S1 ingress for the first two scenarios, an nftables counter at the edge app's
ingress for ``offloaded`` (the TOF hands those to the app, not to the SGW).

Only one lab is up at a time: switching scenario brings the previous lab down.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from fluidedge.lab.gen import WARM_UP, Generator, Stream, gpdu_frame
from fluidedge.lab.lab import Lab
from fluidedge.lab.nftsink import install_sink, list_sink, remove_sink, rule_counters
from fluidedge.lab.topology import UE_IF
from fluidedge.measure.dataplane import BASELINE
from fluidedge.measure.errors import BenchmarkFailure, MeasureInputError
from fluidedge.measure.probe import LatencyProbe
from fluidedge.measure.rfc2544 import IMIX_NAME, OfferResult, frame_size_bytes
from fluidedge.tof.backend import create_backend
from fluidedge.tof.config import TofConfig
from fluidedge.tof.models import Service

APP_SINK_TABLE = "fluidedge_bench"
INNER_DPORT = 9  # what the lab's generator frames carry (discard)
SERVICE_NAME = "bench"


def stream_name(size: str) -> str:
    return f"plain-{'imix' if size.lower() == IMIX_NAME.lower() else size}"


class LabSource:
    """Brings up the lab a scenario needs and offers the lab's streams into it."""

    def __init__(
        self,
        *,
        backend: str,
        prefix: str | None = None,
        tool: str = "auto",
        workdir: Path | None = None,
        latency: bool = True,
    ) -> None:
        self.backend_name = backend
        self.latency = latency
        self.prefix = prefix or f"mb{os.getpid() % 100000}"
        self.tool = tool
        self.workdir = workdir
        self._lab: Lab | None = None
        self._lab_kind: str | None = None
        self._gen: Generator | None = None
        self._streams: dict[str, Stream] = {}
        self._backend: Any = None
        self._offloading = False
        self.described: dict[str, Any] = {}

    # --- life cycle ------------------------------------------------------------------------
    def _up(self, kind: str) -> None:
        if self._lab_kind == kind:
            return
        self.close()
        mode = "routed" if kind == "routed" else "tof"
        suffix = "k" if kind == "routed" else "t"
        lab = Lab.up(prefix=f"{self.prefix}{suffix}", mode=mode)  # type: ignore[arg-type]
        self._lab, self._lab_kind = lab, kind
        try:
            if kind == "tof":
                self._start_tof(lab)
            self._gen = Generator(lab)
            out = self.workdir / f"streams-{kind}" if self.workdir else None
            self._streams = {s.name: s for s in self._gen.write_streams(out)}
        except BaseException:
            self.close()
            raise

    def _start_tof(self, lab: Lab) -> None:
        config = TofConfig.model_validate(
            {
                "backend": self.backend_name,
                "netns": lab.host_ns,
                "enb_interface": lab.enb_side_if,
                "sgw_interface": lab.sgw_side_if,
                "apps_tun": "tofapps",
                "ue_pools": sorted({f"{b.ue_address}/32" for b in lab.bearers}),
                "pinger_target": str(lab.pdn_address),
            }
        )
        self._backend = create_backend(config)
        self._backend.start()
        self._offloading = False
        self.described["tof"] = config.model_dump(mode="json")

    def _set_offload(self, on: bool) -> None:
        if self._offloading == on or self._lab is None or self._backend is None:
            return
        app_ip = str(next(iter(self._lab.apps.values())))
        services = (
            {SERVICE_NAME: Service(SERVICE_NAME, str(self._lab.pdn_address), app_ip)} if on else {}
        )
        self._backend.apply(services)
        self._offloading = on

    def close(self) -> None:
        if self._backend is not None:
            with contextlib.suppress(Exception):
                # The fast path's kernel-side counters: proof the program did the forwarding.
                fast = self._backend.stats().get("fastpath")
                if fast:
                    self.described["fastpath_counters"] = fast
            with contextlib.suppress(Exception):
                self._backend.stop()
            self._backend = None
        if self._lab is not None:
            self._lab.down()
        self._lab = self._gen = None
        self._lab_kind = None
        self._streams = {}

    def __enter__(self) -> LabSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- offering ----------------------------------------------------------------------------
    def offer(self, scenario: str, size: str, rate_pps: float, duration_s: float) -> OfferResult:
        if scenario == BASELINE:
            self._up("routed")
        elif scenario in ("passthrough", "offloaded"):
            self._up("tof")
            self._set_offload(scenario == "offloaded")
        else:
            raise MeasureInputError(f"unknown scenario {scenario!r}")
        gen, lab = self._gen, self._lab
        if gen is None or lab is None:
            raise BenchmarkFailure("lab not up")
        stream = self._streams.get(stream_name(size))
        if stream is None:
            raise MeasureInputError(f"no lab stream for frame size {size!r}")
        self.described.setdefault("streams", {})[size] = stream.sizes_text
        app = next(iter(lab.apps)) if scenario == "offloaded" else None
        if app is not None:
            self._app_sink(lab, app, install=True)
        probe = self._probe(lab, gen, size, app) if self.latency else None
        latencies: tuple[float, ...] = ()
        try:
            if probe is not None:
                probe.start(delay_s=WARM_UP, duration_s=duration_s)
            result = gen.offer(
                stream.pcap,
                pps=max(1, int(rate_pps)),
                duration=duration_s,
                tool=self.tool,  # type: ignore[arg-type]
            )
            received = self._app_count(lab, app) if app is not None else result.received
        finally:
            if probe is not None:
                latencies = probe.stop()
            if app is not None:
                self._app_sink(lab, app, install=False)
        # The lab reports totals over the whole offer (warm-up included) and the steady-state
        # send rate; express the duration so that sent / duration is that steady rate.
        duration = result.sent / result.offered_pps if result.offered_pps > 0 else duration_s
        return OfferResult(
            sent=result.sent, received=received, duration_s=duration, latency_us=latencies
        )

    def _probe(self, lab: Lab, gen: Generator, size: str, app: str | None) -> LatencyProbe:
        """Probes on the first bearer, caught at its SGW (or at the edge app when offloading)."""
        bearer = lab.bearers[0]
        nominal = round(frame_size_bytes(size))

        def make_frame(ident: int) -> bytes:
            return gpdu_frame(
                bearer,
                size=nominal,
                dst_mac=gen.dst_macs[bearer.sgw],
                src_mac=gen.src_mac,
                inner_dst=lab.pdn_address,
                psc=False,
                ident=ident,
            )

        if app is not None:
            recv_ns, recv_if = lab.ns(app), UE_IF
        else:
            recv_ns, recv_if = lab.ns(bearer.sgw), lab.node_s1_if
        return LatencyProbe(
            send_netns=lab.ran_ns,
            send_ifname=lab.gen_if,
            recv_netns=recv_ns,
            recv_ifname=recv_if,
            make_frame=make_frame,
        )

    def _app_sink(self, lab: Lab, app: str, *, install: bool) -> None:
        ns = lab.ns(app)
        remove_sink(ns, APP_SINK_TABLE)
        if not install:
            return
        result = install_sink(ns, APP_SINK_TABLE, UE_IF, [f"udp dport {INNER_DPORT} counter drop"])
        if result.returncode != 0:
            raise BenchmarkFailure(f"nft counter in {ns}: {result.stderr.strip()}")

    def _app_count(self, lab: Lab, app: str) -> int:
        result = list_sink(lab.ns(app), APP_SINK_TABLE)
        if result.returncode != 0:
            raise BenchmarkFailure(f"cannot read the app counter: {result.stderr.strip()}")
        counts = rule_counters(result.stdout)
        return counts[0] if counts else 0
