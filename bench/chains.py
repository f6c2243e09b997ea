"""Service function chains per driver: added latency per hop, throughput, change -> effect,
and make-before-break at 10,000 datagrams/s.

    sudo .venv/bin/python bench/chains.py [--driver both|ovs|linuxbridge] [--samples 2000]
    sudo .venv/bin/python bench/chains.py --driver ovs --only-stream --repeat 6

One invocation runs each driver in turn on the chain lab of the functional tests
(tests/functional/chains/chain_lab.py): hosts A and B on one bridge and three transparent
functions (a Linux bridge between two legs, no learning). ``ovs``: a private ovsdb-server/
ovs-vswitchd (userspace datapath) in a namespace of its own, the OpenFlow chains;
``linuxbridge``: a Linux bridge, the tc/eBPF chains. A UDP echo server runs in B as its own
process; A measures the round trip of ``--samples`` 64-byte datagrams, one at a time:

1. direct: no chain (the bridge's NORMAL flow), the baseline of the same invocation;
2. a chain of 1 function, then of 3 functions (3 groups of one member), symmetric: a round
   trip crosses each function twice. Added latency per hop = (chain - direct) / (2 x
   functions), at p50 and p99, and the ratio chain / direct.
3. change -> effect: datagrams flow directly every millisecond; a chain through one function
   is applied; the time from the call to the first datagram the function sees (the first
   bundle's effect; the old version's removal follows after a drain),
   p50/p99 over ``--changes`` changes (the chain is deleted again between them).
4. throughput: A floods B with ``--flood`` 64-byte datagrams as fast as one sender process
   can (tests/functional/chains/udp_stream.py); the rate B receives (first to last
   datagram) directly, through 1 and through 3 functions, and its ratio to direct; the
   datagrams lost.
5. make-before-break at 10,000/s: a sequence-numbered stream of ``--stream`` datagrams
   through a group of one function, once unchanged and twice while a member joins the
   group, the chain is re-declared fail-open (which compiles to the same flows while the
   group has members: 0 flow-mods) and the member leaves again, the changes applied in
   full (every flow of the chain re-added in a new version) and as a diff (only the changed
   flows; the adapter's default): the datagrams lost and out of order in each, the
   flow-mods of each change, and the lost runs next to where the changes were applied, so
   what the changes cost is read against what the machine itself loses. The lab's
   ovs-vswitchd runs at a raised priority here (ChainLab.prioritise). ``--only-stream``
   runs this section alone, ``--repeat N`` its three variants N times in turn. (On
   ``linuxbridge`` there is no full/diff choice: a change rewrites the maps of what changed;
   its "full" and "diff" lines are two runs of the same.)

The round trips' client and echo server run on one CPU (``--cpu``): on this VM a wake-up of
the other CPU costs ~60 us per round trip, which would swamp what a hop costs (measured: the
tc/eBPF chain's round trip through 3 functions 14 us with both on one CPU, 74-98 us with
them on two, whichever path). Each driver's ratios are against its own direct path; the last
lines compare the drivers (linuxbridge / ovs) where both ran.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.functional.chains.chain_lab import (  # noqa: E402
    ChainLab,
    Function,
    LinuxChainLab,
    echo,
)

from fluidedge.chains.linuxbridge import LinuxChains  # noqa: E402
from fluidedge.chains.model import (  # noqa: E402
    ChainState,
    FlowClassifier,
    PortChain,
    PortPair,
    PortPairGroup,
)
from fluidedge.chains.ovs import OvsChains  # noqa: E402
from fluidedge.linux import tc  # noqa: E402
from fluidedge.linux.sockbuf import size_buffers  # noqa: E402

Plane = OvsChains | LinuxChains

PORT = 7300
ECHO = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    f"s.bind(('0.0.0.0', {PORT}))\n"
    "while True:\n"
    "    d, p = s.recvfrom(2048)\n"
    "    s.sendto(d, p)\n"
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def state(lab: ChainLab, fns: list[Function]) -> ChainState:
    """A chain through ``fns`` (none: no chain); every function stays a declared pair, so its
    legs stay isolated (a function bridging two legs of one network is a loop otherwise)."""
    a, b = lab.hosts["net/a"], lab.hosts["net/b"]
    pairs = {f.name: PortPair(f.name, f.ingress, f.egress) for f in lab.functions.values()}
    groups = {f"g{f.name}": PortPairGroup(f"g{f.name}", (f.name,)) for f in fns}
    chains = {"ch": PortChain("ch", 1, tuple(groups), ("c",))} if fns else {}
    return ChainState(
        port_pairs=pairs,
        groups=groups,
        classifiers={"c": FlowClassifier("c", a.device, b.device, protocol=17)},
        chains=chains,
    )


def receive(lab: ChainLab, port: int) -> tuple[socket.socket, list[tuple[float, int]]]:
    """A receiver in B (a thread of this process): (arrival time, sequence) per datagram."""
    server = lab.udp_server(lab.hosts["net/b"], port)
    size_buffers(server, receive=64 << 20)
    server.settimeout(0.2)
    got: list[tuple[float, int]] = []

    def run() -> None:
        while True:
            try:
                data = server.recv(64)
            except TimeoutError:
                continue
            except OSError:
                return
            got.append((time.perf_counter(), struct.unpack("!Q", data[:8])[0]))

    threading.Thread(target=run, daemon=True).start()
    return server, got


def stream(lab: ChainLab, port: int, rate: float, count: int) -> str:
    """Run the paced sender in A; its output (sent, mean rate)."""
    argv = ["ip", "netns", "exec", lab.hosts["net/a"].netns, sys.executable, "-m",
            "tests.functional.chains.udp_stream", "10.0.0.2", str(port), str(rate),
            str(count)]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT).stdout


def settle(got: list[tuple[float, int]], count: int) -> None:
    """Wait until ``count`` arrived or nothing arrived for a second."""
    last = -1
    while len(got) < count and len(got) != last:
        last = len(got)
        time.sleep(1.0)


def flaws(seqs: list[int], count: int) -> tuple[int, int]:
    """(lost, out of order) of a sequence-numbered stream of ``count``."""
    late = sum(1 for x, y in itertools.pairwise(seqs) if y < x)
    return count - len(set(seqs)), late


def bursts(seqs: list[int], count: int) -> str:
    """The lost sequence numbers as runs, ``first+length`` each (the largest 4)."""
    have = set(seqs)
    runs: list[tuple[int, int]] = []
    for seq in range(count):
        if seq in have:
            continue
        if runs and runs[-1][0] + runs[-1][1] == seq:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((seq, 1))
    top = sorted(runs, key=lambda r: -r[1])[:4]
    return " ".join(f"{first}+{length}" for first, length in sorted(top))


def group_state(lab: ChainLab, members: tuple[str, ...], policy: str) -> ChainState:
    a, b = lab.hosts["net/a"], lab.hosts["net/b"]
    pairs = {f.name: PortPair(f.name, f.ingress, f.egress) for f in lab.functions.values()}
    return ChainState(
        port_pairs=pairs,
        groups={"g": PortPairGroup("g", members)},
        classifiers={"c": FlowClassifier("c", a.device, b.device, protocol=17)},
        chains={"ch": PortChain("ch", 1, ("g",), ("c",), failure_policy=policy)},  # type: ignore[arg-type]
    )


def rtts(client: socket.socket, samples: int) -> list[float]:
    """Round trips in microseconds; a datagram lost (1 s) is counted, not timed."""
    out = []
    if not echo(client, ("10.0.0.2", PORT), timeout=30):  # the server is up, ARP resolved
        raise SystemExit("no echo from B within 30 s")
    payload = b"x" * 64
    client.settimeout(1.0)
    lost = 0
    for i in range(samples + samples // 10):  # the first tenth warms up (pins, caches)
        start = time.perf_counter()
        client.sendto(payload, ("10.0.0.2", PORT))
        try:
            client.recv(2048)
        except TimeoutError:
            lost += 1
            continue
        if i >= samples // 10:
            out.append((time.perf_counter() - start) * 1e6)
    if lost:
        print(f"  ({lost} datagrams lost)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", choices=("both", "ovs", "linuxbridge"), default="both")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument(
        "--cpu", type=int, default=0, help="the CPU of the round trips' client and echo server"
    )
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--flood", type=int, default=50_000)
    parser.add_argument("--stream", type=int, default=30_000)
    parser.add_argument(
        "--only-stream", action="store_true", help="only the 10,000/s make-before-break runs"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each stream variant")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (namespaces, Open vSwitch, tc)")
    drivers = ("ovs", "linuxbridge") if args.driver == "both" else (args.driver,)
    found: dict[str, dict[str, float]] = {}
    print(f"service function chains, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}")
    for driver in drivers:
        found[driver] = run_driver(args, driver)
    if len(found) == 2 and not args.only_stream:
        ovs, lb = found["ovs"], found["linuxbridge"]
        print("linuxbridge / ovs, same invocation:")
        for key, unit in (("direct p50", "us"), ("3 functions p50", "us"),
                          ("hop p50", "us"), ("change p50", "ms"),
                          ("throughput 3 functions", "datagrams/s")):  # fmt: skip
            print(f"  {key:24s} {lb[key]:10.1f} / {ovs[key]:10.1f} {unit:12s}"
                  f" = {lb[key] / ovs[key]:.2f}x")  # fmt: skip


def run_driver(args: argparse.Namespace, driver: str) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="fe-chbench-"))
    lab = ChainLab(workdir) if driver == "ovs" else LinuxChainLab(workdir)
    echo: subprocess.Popen[bytes] | None = None
    found: dict[str, float] = {}
    try:
        a = lab.host("a", "net", "02:00:00:00:0a:01", "10.0.0.1/24")
        b = lab.host("b", "net", "02:00:00:00:0a:02", "10.0.0.2/24")
        fns = [lab.function(f"f{i}") for i in range(3)]
        echo = subprocess.Popen(
            ["taskset", "-c", str(args.cpu), "ip", "netns", "exec", b.netns, sys.executable,
             "-c", ECHO]
        )  # fmt: skip
        plane = lab.plane()
        what = (
            "ovs (userspace netdev datapath, OpenFlow)"
            if driver == "ovs"
            else "linuxbridge (kernel bridge, tc/eBPF)"
        )
        print(f"-- {what}")
        if not args.only_stream:
            found = measure(args, lab, a, fns, plane)
        make_before_break(args, lab, fns, plane)
        if isinstance(lab, LinuxChainLab) and not args.only_stream:
            plane.apply(ChainState())  # no program on any port: nftables alone steers
            nft_alternative(args, lab, a, fns, found)
    finally:
        if echo is not None:
            echo.kill()
            echo.wait()
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return found


def nft_table(lab: ChainLab, fns: list[Function], port: int = PORT) -> str:
    """The alternative on a Linux bridge: nftables ``netdev`` ingress chains forwarding UDP
    hop by hop (``fwd to``), one member per hop, no spreading or pins: the floor of what an
    nftables chain forwarder costs (a real one would add jhash maps and dynamic sets)."""
    a, b = lab.hosts["net/a"].device, lab.hosts["net/b"].device
    fwd = [a, *[x for f in fns for x in (f.ingress, f.egress)], b]
    lines = ["table netdev fechainalt {"]
    mark = "meta mark set 0xc4a1c4a1 "  # an isolated leg's egress passes marked frames only
    for k in range(0, len(fwd), 2):
        src, dst = fwd[k], fwd[k + 1]
        lines += [
            f'  chain f{k} {{ type filter hook ingress device "{src}" priority 0;',
            f'    udp dport {port} {mark if dst != b else ""}fwd to "{dst}"',
            "  }",
            f'  chain r{k} {{ type filter hook ingress device "{dst}" priority 0;',
            f'    udp sport {port} {mark if src != a else ""}fwd to "{src}"',
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def nft_alternative(
    args: argparse.Namespace, lab: ChainLab, a: Any, fns: list[Function], found: dict[str, float]
) -> None:
    """The same round trips, and the 3-function throughput, with nftables ``fwd`` instead of
    the program (same invocation): the measurement behind the choice of tc/eBPF."""
    for fn in fns:
        for dev in (fn.ingress, fn.egress):  # the legs' drop-all tc filter runs before netdev
            tc.delete_filter(lab.switch, dev, "ingress", pref=tc.ISOLATION_PREF, handle=tc.PLUGGED)
    client = lab.udp_client(a)
    os.sched_setaffinity(0, {args.cpu})
    try:
        for n in (1, 3):
            nft = ["ip", "netns", "exec", lab.switch, "nft"]
            subprocess.run([*nft, "-f", "-"], input=nft_table(lab, fns[:n]), text=True, check=True)
            got = rtts(client, args.samples)
            subprocess.run([*nft, "delete", "table", "netdev", "fechainalt"], check=True)
            p50, p99 = pct(got, 50), pct(got, 99)
            hop = (p50 - found["direct p50"]) / (2 * n)
            print(
                f"nft fwd {n} function{'s' if n > 1 else ' '}  p50 {p50:8.1f} us  p99 {p99:8.1f} us"
                f"  added per hop p50 {hop:5.1f} us (tc/eBPF's: "
                f"{found['hop p50' if n == 3 else 'hop1 p50']:.1f} us)"
            )
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        flood_port = PORT + 9
        table = nft_table(lab, fns, flood_port)
        subprocess.run([*nft, "-f", "-"], input=table, text=True, check=True)
        server, got_at = receive(lab, flood_port)
        try:
            stream(lab, flood_port, 1e9, args.flood)
            settle(got_at, args.flood)
        finally:
            server.close()
            subprocess.run([*nft, "delete", "table", "netdev", "fechainalt"], check=True)
        span = got_at[-1][0] - got_at[0][0] if len(got_at) > 1 else float("inf")
        rate = len(got_at) / span
        lost, _ = flaws([q for _, q in got_at], args.flood)
        print(
            f"nft fwd throughput 3 functions {rate:9.0f} datagrams/s  ({lost} lost; tc/eBPF's: "
            f"{found['throughput 3 functions']:.0f})"
        )
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        client.close()
        for fn in fns:
            for dev in (fn.ingress, fn.egress):
                tc.isolate(lab.switch, dev)  # the drop-all back


def measure(
    args: argparse.Namespace, lab: ChainLab, a: Any, fns: list[Function], plane: Plane
) -> dict[str, float]:
    """Sections 1-4: round trips, change -> effect, throughput (the figures, returned). The
    functions' packet sockets are closed while the path is timed (Function.capture)."""
    found: dict[str, float] = {}
    client = lab.udp_client(a)
    results: dict[int, list[float]] = {}
    for fn in fns:
        fn.capture(on=False)
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {args.cpu})  # the echo server's CPU (see --cpu)
    for n in (0, 1, 3):
        plane.apply(state(lab, fns[:n]))
        results[n] = rtts(client, args.samples)
    os.sched_setaffinity(0, everywhere)
    base50, base99 = pct(results[0], 50), pct(results[0], 99)
    found["direct p50"] = base50
    found["3 functions p50"] = pct(results[3], 50)
    found["hop p50"] = (found["3 functions p50"] - base50) / 6
    found["hop1 p50"] = (pct(results[1], 50) - base50) / 2
    print(f"round trip direct       p50 {base50:8.1f} us  p99 {base99:8.1f} us", end="")
    print(f"  (n={args.samples})")
    for n in (1, 3):
        p50, p99 = pct(results[n], 50), pct(results[n], 99)
        label = f"{n} function{'s' if n > 1 else ' '}"
        print(
            f"round trip {label} p50 {p50:8.1f} us  p99 {p99:8.1f} us"
            f"  ratio p50 {p50 / base50:.2f}x p99 {p99 / base99:.2f}x"
        )
        print(
            f"  added per hop (one crossing of one function): "
            f"p50 {(p50 - base50) / (2 * n):7.1f} us  p99 {(p99 - base99) / (2 * n):7.1f} us"
        )
    # change -> effect (the function's capture sees the effect)
    fns[0].capture(on=True)
    plane.apply(state(lab, []))
    stop = threading.Event()
    sender = lab.udp_client(a)

    def send() -> None:
        while not stop.is_set():
            sender.sendto(b"e" * 64, ("10.0.0.2", PORT))
            time.sleep(0.001)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    effects = []
    for _ in range(args.changes):
        plane.apply(state(lab, []))
        fns[0].seen()
        start = time.perf_counter()
        # The apply returns after its drain (the old version's removal); the effect is
        # the first bundle's, so it is watched while the apply runs.
        applying = threading.Thread(target=plane.apply, args=(state(lab, fns[:1]),))
        applying.start()
        while not fns[0].seen()["in"]:
            if time.perf_counter() - start > 10:
                raise SystemExit("chain change had no effect within 10 s")
            time.sleep(0.0005)
        effects.append((time.perf_counter() - start) * 1e3)
        applying.join()
    stop.set()
    thread.join()
    e50, e99 = pct(effects, 50), pct(effects, 99)
    found["change p50"] = e50
    how = (
        "a subprocess per ovs-ofctl/ovs-vsctl call"
        if isinstance(plane, OvsChains)
        else "map writes; a subprocess per ip/tc query and per port attached"
    )
    print(
        f"chain change -> effect  p50 {e50:7.1f} ms  p99 {e99:7.1f} ms  (n={args.changes}; {how})"
    )
    client.close()
    sender.close()
    fns[0].capture(on=False)
    # throughput, one way
    rates: dict[int, float] = {}
    for k, n in enumerate((0, 1, 3)):
        plane.apply(state(lab, fns[:n]))
        server, got = receive(lab, PORT + 1 + k)
        stream(lab, PORT + 1 + k, 1e9, args.flood)
        settle(got, args.flood)
        server.close()
        span = got[-1][0] - got[0][0] if len(got) > 1 else float("inf")
        rates[n] = len(got) / span
        lost, _ = flaws([q for _, q in got], args.flood)
        label = "direct      " if n == 0 else f"{n} function{'s' if n > 1 else ' '}"
        ratio = "" if n == 0 else f"  ratio {rates[n] / rates[0]:.2f}x"
        print(f"throughput {label} {rates[n]:9.0f} datagrams/s{ratio}  ({lost} lost)")
    found["throughput 3 functions"] = rates[3]
    return found


def make_before_break(
    args: argparse.Namespace, lab: ChainLab, fns: list[Function], plane: Plane
) -> None:
    """Section 5: a 10,000/s stream unchanged, and through 3 changes applied in full (every
    flow of the chain re-added in the new version) and as a diff (only the changed flows)."""
    if isinstance(plane, OvsChains):
        lab.prioritise()
    f0, f1 = fns[0].name, fns[1].name
    variants = [(False, False), (True, False), (True, True)] * args.repeat
    for k, (changes, diff) in enumerate(variants):
        if isinstance(plane, OvsChains):
            plane.diff = diff
        port = PORT + 10 + k
        plane.apply(group_state(lab, (f0,), "closed"))
        server, got = receive(lab, port)
        steps = [
            group_state(lab, (f0, f1), "closed"),
            group_state(lab, (f0, f1), "open"),
            group_state(lab, (f0,), "closed"),
        ]
        done: list[str] = []
        sending = threading.Thread(
            target=lambda p=port, d=done: d.append(stream(lab, p, 10_000, args.stream))
        )
        sending.start()
        mods: list[int] = []
        marks: list[int] = []
        for j, step in enumerate(steps if changes else [], start=1):
            while len(got) < j * args.stream // 4 and sending.is_alive():
                time.sleep(0.01)
            marks.append(got[-1][1] if got else 0)
            mods.append(plane.apply(step))
        sending.join()
        settle(got, args.stream)
        server.close()
        lost, late = flaws([q for _, q in got], args.stream)
        sent_rate = done[0].split()[1] if done else "?"
        unit = "flow-mods" if isinstance(plane, OvsChains) else "map writes"
        what = (
            f"3 changes, {'diff' if diff else 'full'} ({'+'.join(map(str, mods))} {unit})"
            if changes
            else "no change"
        )
        print(
            f"stream 10,000/s, {args.stream}: {what:34s}  lost {lost:5d}  out of order "
            f"{late}  (sender's mean rate {sent_rate}/s)"
        )
        if lost:
            where = bursts([q for _, q in got], args.stream)
            print(f"    lost runs (first+length): {where}; changes applied at {marks}")


if __name__ == "__main__":
    main()
