"""The web GUI's tunnels page with 100,000 bearers, and its live-update latency.

    .venv/bin/python bench/gui_load.py [--bearers 100000] [--baseline 1000] [--loads 15] [--json]

How 100,000 bearers get into the TOF without 100,000 UEs: each daemon here is the real
application (``create_app``: the TOF part with the ``none`` backend, i.e. the real
:class:`~fluidedge.tof.pipeline.Pipeline` without ports, plus the GUI), served by uvicorn on
loopback in this process. Its pipeline learns every bearer from real GTP-U frames (an uplink
and a downlink G-PDU per UE, encoded by the codec, 8 eNBs, 1 SGW, distinct TEIDs) handed to
``Pipeline.from_s1`` as a backend's receive loop would; no packet crosses an interface, which is
what 100,000 UEs would add and what the page does not see. Debian's Chromium (Playwright,
headless) logs in and loads pages.

Measured, in one invocation, for the large table and a baseline table (``--baseline`` bearers),
median and p95 over ``--loads`` navigations each:

* ``server``: the route's own time (its ``Server-Timing: app`` header): search + page + render;
* ``ttfb``: request start to first response byte, as the browser saw it;
* ``fcp``: navigation start to first contentful paint (the browser's first render);
* ``dcl``: navigation start to DOMContentLoaded.

Pages: the first page, the last page (paging deep into the table), a CIDR search that matches
~1/8 of the bearers, a TEID search that matches one. ``GET /tunnels`` (the API's whole list, what
a client without paging would fetch) is timed for the same tables, for comparison.

Live latency: with the tunnels page open, one G-PDU of the first row's bearer is fed to the
pipeline; the time until the page's cell shows the new count (a MutationObserver in the page,
wall clock on both sides) is one sample (``--live`` samples, large and baseline tables). The
stream checks every ``live_interval_s`` (0.25 s by default), so that bounds the mean.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from fluidedge.codec.net import ipv4, udp
from fluidedge.codec.stack import encapsulate_gpdu, ethernet_frame
from fluidedge.core.config import parse_config
from fluidedge.daemon.app import build_context, create_app
from fluidedge.tof.pipeline import ENB, SGW, Pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fixtures.browser
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS

TOKEN = "bench-token-" + "0" * 24
ENBS = [IPv4Address(f"198.18.0.{11 + i}") for i in range(8)]
SGW_ADDR = IPv4Address("198.18.0.21")
PDN = IPv4Address("198.18.200.10")
UE_BASE = int(IPv4Address("10.0.0.0"))
DL_TEID_BASE = 0x10000000


def _frame(ue: IPv4Address, enb: IPv4Address, teid: int, *, uplink: bool) -> bytes:
    a, b = (ue, PDN) if uplink else (PDN, ue)
    ports, body = ((40000, 80), b"u" * 32) if uplink else ((80, 40000), b"d" * 32)
    inner_udp = udp.encode(a.packed, b.packed, *ports, body)
    inner = ipv4.encode(a.packed, b.packed, udp.PROTO_UDP, inner_udp, dont_fragment=True)
    src, dst = (enb, SGW_ADDR) if uplink else (SGW_ADDR, enb)
    macs = (b"\x02" * 6, b"\x04" * 6) if uplink else (b"\x04" * 6, b"\x02" * 6)
    return ethernet_frame(*macs, encapsulate_gpdu(src.packed, dst.packed, teid, inner))


def fill(pipeline: Pipeline, bearers: int) -> float:
    """Teach ``pipeline`` ``bearers`` bearers from real G-PDU frames; returns the seconds taken."""
    started = time.perf_counter()
    now = time.time()
    for i in range(bearers):
        ue, enb = IPv4Address(UE_BASE + i), ENBS[i % len(ENBS)]
        pipeline.from_s1(_frame(ue, enb, i + 1, uplink=True), ENB, now)
        pipeline.from_s1(_frame(ue, enb, DL_TEID_BASE + i, uplink=False), SGW, now)
    if len(pipeline.bearers) != bearers:
        raise SystemExit(f"learned {len(pipeline.bearers)} bearers, wanted {bearers}")
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """The daemon's application with ``bearers`` learned, served on loopback in a thread."""

    def __init__(self, state: Path, bearers: int) -> None:
        config = parse_config(
            {
                "state_dir": str(state),
                "api": {"token": TOKEN},
                "tof": {"backend": "none", "max_tunnels": max(bearers, 1)},
            }
        )
        self.context = build_context(config)
        self.pipeline: Pipeline = self.context.parts["tof"].backend.pipeline  # type: ignore[attr-defined]
        self.fill_s = fill(self.pipeline, bearers)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        server_config = uvicorn.Config(
            create_app(self.context, TOKEN), port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(server_config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise SystemExit("daemon did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.context.store.close()


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": statistics.median(ordered), "p95": p95}


NAV_TIMING = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  return {ttfb: n.responseStart - n.requestStart, dcl: n.domContentLoadedEventEnd,
          fcp: fcp ? fcp.startTime : NaN};
}"""


def load_page(page: Any, url: str, loads: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {"server": [], "ttfb": [], "fcp": [], "dcl": []}
    for _ in range(loads):
        response = page.goto(url, wait_until="load")
        if response is None or response.status != 200:
            raise SystemExit(f"{url}: {response.status if response else 'no response'}")
        match = re.search(r"app;dur=([0-9.]+)", response.headers.get("server-timing", ""))
        if match is None:
            raise SystemExit(f"{url}: no Server-Timing header")
        samples["server"].append(float(match.group(1)))
        page.wait_for_function(
            "() => performance.getEntriesByName('first-contentful-paint').length > 0"
        )
        timing = page.evaluate(NAV_TIMING)
        for key in ("ttfb", "fcp", "dcl"):
            samples[key].append(float(timing[key]))
    return {key: _stats(values) for key, values in samples.items()}


def api_list(url: str, loads: int) -> dict[str, float]:
    times = []
    for _ in range(max(3, loads // 3)):
        started = time.perf_counter()
        answer = httpx.get(f"{url}/tunnels", timeout=120)
        answer.raise_for_status()
        times.append(1000 * (time.perf_counter() - started))
    return _stats(times)


LIVE_WATCH = """([id, before]) => {
  const el = document.getElementById(id);
  window.__seen = null;
  const observer = new MutationObserver(() => {
    if (el.textContent !== before && window.__seen === null) {
      window.__seen = Date.now(); observer.disconnect(); } });
  observer.observe(el, {childList: true, characterData: true, subtree: true});
}"""


def live_latency(page: Any, daemon: Daemon, samples: int) -> dict[str, float]:
    page.goto(f"{daemon.url}/ui/tof/tunnels", wait_until="load")
    page.locator("#live-state").filter(has_text="live: updated").wait_for(timeout=10_000)
    cell = page.locator("#tunnels tbody td[id$='-ul']").first
    cell_id = cell.get_attribute("id")
    bearer = next(iter(daemon.pipeline.bearers.values()))
    ue, enb = IPv4Address(bearer.ue), IPv4Address(bearer.enb)
    frame = _frame(ue, enb, bearer.ul_teid or 0, uplink=True)
    latencies = []
    for _ in range(samples):
        before = cell.inner_text()
        time.sleep(0.3)  # start at a random phase of the stream's check period
        page.evaluate(LIVE_WATCH, [cell_id, before])
        sent = time.time()
        daemon.pipeline.from_s1(frame, ENB, time.time())
        page.wait_for_function("() => window.__seen !== null", timeout=10_000)
        seen = page.evaluate("() => window.__seen")
        latencies.append(float(seen) - 1000 * sent)
    return {**_stats(latencies), "mean": statistics.fmean(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bearers", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--loads", type=int, default=15)
    parser.add_argument("--live", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--screenshot", type=Path, help="save the large table's first page here")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    state = Path(tempfile.mkdtemp(prefix="fe-gui-bench-"))
    daemons: dict[str, Daemon] = {}
    results: dict[str, Any] = {"bearers": args.bearers, "baseline_bearers": args.baseline}
    try:
        for label, n in (("baseline", args.baseline), ("large", args.bearers)):
            daemons[label] = Daemon(state / label, n)
            print(f"{label}: {n:,} bearers learned in {daemons[label].fill_s:.1f} s")
        with sync_playwright() as playwright:
            profile = tempfile.mkdtemp(prefix="fe-chromium-")
            browser = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 800},
            )
            try:
                page = browser.pages[0]
                for label, daemon in daemons.items():
                    n = len(daemon.pipeline.bearers)
                    page.goto(f"{daemon.url}/ui/login")
                    page.get_by_label("API token").fill(TOKEN)
                    page.get_by_role("button", name="Log in").click()
                    page.wait_for_url(f"{daemon.url}/ui/")
                    last = -(-n // 50)
                    pages = {
                        "first page": "",
                        "last page": f"?page={last}",
                        "CIDR search (1/8)": "?q=198.18.0.11/32",
                        "TEID search (1)": f"?q={n // 2}",
                    }
                    results[label] = {
                        name: load_page(page, f"{daemon.url}/ui/tof/tunnels{query}", args.loads)
                        for name, query in pages.items()
                    }
                    results[label]["GET /tunnels (whole list, JSON)"] = {
                        "server": api_list(daemon.url, args.loads)
                    }
                    results[label]["live"] = live_latency(page, daemon, args.live)
                    if label == "large" and args.screenshot is not None:
                        page.goto(f"{daemon.url}/ui/tof/tunnels?page=2", wait_until="load")
                        page.screenshot(path=str(args.screenshot))
            finally:
                browser.close()
                shutil.rmtree(profile, ignore_errors=True)
    finally:
        for daemon in daemons.values():
            daemon.stop()
        shutil.rmtree(state, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    report(results)


def report(results: dict[str, Any]) -> None:
    large, base = results["large"], results["baseline"]
    print(
        f"\ntunnels page, {results['bearers']:,} bearers vs baseline "
        f"{results['baseline_bearers']:,} (ms, median / p95; ratio = large / baseline median)"
    )
    print(f"{'page':<34}{'metric':<8}{'large':>18}{'baseline':>18}{'ratio':>8}")
    for name in large:
        if name == "live":
            continue
        for metric, value in large[name].items():
            b = base[name][metric]
            ratio = value["median"] / b["median"] if b["median"] else float("nan")
            print(
                f"{name:<34}{metric:<8}"
                f"{value['median']:>9.1f} /{value['p95']:>7.1f}"
                f"{b['median']:>9.1f} /{b['p95']:>7.1f}{ratio:>8.2f}"
            )
    print("\nlive update latency (pipeline counter change -> visible in the page), ms")
    for label in ("large", "baseline"):
        live = results[label]["live"]
        print(
            f"  {label:<9} mean {live['mean']:.0f}  median {live['median']:.0f}"
            f"  p95 {live['p95']:.0f}"
        )


if __name__ == "__main__":
    main()
