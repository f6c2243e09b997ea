"""The noisy-neighbour experiment's rig (seed §7.3, Figure 29a), built from real parts.

- **Instances**: an in-process instance manager (own state directory and store) runs the
  targets and the neighbour as runc instances. ``vfw`` and ``vrouter`` each have two
  interfaces, on two instance networks (Linux bridges inside a bench namespace); the
  forwarding itself is the kernel's, inside the instance's network namespace, configured from
  the host like a CNI plugin would (``net.ipv4.ip_forward``; an nftables forward chain of
  ``--rules`` non-matching rules then accept for ``vfw``; ``--routes`` /24 routes for
  ``vrouter``, which the generator's destinations spread over).
- **Generator and sink**: namespaces on either side. trafgen sends 64-byte UDP frames as fast
  as it can for the throughput phase, pinned to the target's CPU (packet forwarding on veths
  runs in the sender's softirq, so the generator's CPU is where the target's work happens);
  tcpreplay paces the latency phase's load evenly; :class:`~fluidedge.measure.probe.LatencyProbe`
  timestamps probes on both ends with kernel receive timestamps. A netdev-ingress nftables
  counter at the sink counts and drops what arrives.
- **Neighbour**: an instance running our own cache walker (below): processes that copy a
  buffer larger than the host's last-level cache end to end and in random 64 KiB blocks, so
  they stream memory and evict everything else from the LLC, as the seed's ``stress-ng``
  cache stressors do. Two instances of it: one on every CPU (``neighbour``), one pinned away
  from the target (``pinned``); both are frozen (the instance manager's pause) when not in use.
- **CAT scenarios**, where the host has resctrl: the seed's models through the CAT manager,
  the neighbour instance's tasks in the noisy class and the target's CPU in the target class
  (CPU-based, because the forwarding runs in softirq on that CPU, in whatever task is current).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fluidedge.cat.fs import RealResctrlFS, probe
from fluidedge.cat.layout import MODELS
from fluidedge.cat.manager import CatConfig, CatManager
from fluidedge.cat.models import PresetRequest
from fluidedge.cat.tasks import instance_tasks
from fluidedge.codec import pcap
from fluidedge.core.store import Store
from fluidedge.instances.images.hostpython import ensure_python
from fluidedge.instances.manager import InstancesConfig, Manager
from fluidedge.instances.models import InstanceRequest, NetworkSpec, TemplateSpec
from fluidedge.lab.gen import stop_group
from fluidedge.lab.nftsink import install_sink, list_sink, remove_sink, rule_counters
from fluidedge.linux import netns
from fluidedge.measure.errors import BenchmarkFailure
from fluidedge.measure.machine import describe
from fluidedge.measure.noisy import (
    CI_NOTE,
    Cell,
    Trial,
    chart,
    latency_stats,
    scenarios_for,
    summarise,
)
from fluidedge.measure.probe import LatencyProbe
from fluidedge.measure.rundir import new_run_dir, write_csv, write_json

SINK_TABLE = "fe_noisy"
FRAME_SIZE = 64  # with FCS, RFC 2544
WALKER = r"""
import os, random, sys, time
size = int(sys.argv[1]) << 20
procs = int(sys.argv[2])
for _ in range(procs - 1):
    if os.fork() == 0:
        break
buf = bytearray(size)
view = memoryview(buf)
half = size // 2
block = 1 << 16
rnd = random.Random(os.getpid())
while True:
    view[half:] = view[:half]          # stream the whole buffer: memory bandwidth, LLC evicted
    for _ in range(512):               # then random blocks: no locality the LLC could keep
        a = rnd.randrange(0, size - block)
        b = rnd.randrange(0, size - block)
        view[a:a + block] = view[b:b + block]
"""


def _run(argv: list[str], *, stdin: str | None = None, timeout: float = 60) -> str:
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise BenchmarkFailure(f"{' '.join(argv[:6])}...: {result.stderr.strip()[-400:]}")
    return result.stdout


def _mac(argv_prefix: list[str], ifname: str) -> bytes:
    out = _run([*argv_prefix, "ip", "-j", "link", "show", "dev", ifname])
    return bytes.fromhex(json.loads(out)[0]["address"].replace(":", ""))


def _checksum(data: bytes) -> int:
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(
    *, dst_mac: bytes, src_mac: bytes, src: str, dst: str, dport: int, ident: int
) -> bytes:
    """A 64-byte (with FCS) Ethernet/IPv4/UDP frame, IPv4 identification ``ident``."""
    payload = bytes(FRAME_SIZE - 4 - 14 - 20 - 8)
    udp_len = 8 + len(payload)
    ip_header = bytearray(20)
    ip_header[0], ip_header[8], ip_header[9] = 0x45, 64, 17
    ip_header[2:4] = (20 + udp_len).to_bytes(2, "big")
    ip_header[4:6] = ident.to_bytes(2, "big")
    ip_header[12:16] = bytes(int(x) for x in src.split("."))
    ip_header[16:20] = bytes(int(x) for x in dst.split("."))
    ip_header[10:12] = _checksum(bytes(ip_header)).to_bytes(2, "big")
    udp = (4000).to_bytes(2, "big") + dport.to_bytes(2, "big") + udp_len.to_bytes(2, "big")
    return dst_mac + src_mac + b"\x08\x00" + bytes(ip_header) + udp + b"\x00\x00" + payload


class NoisyRig:
    """Namespaces, networks, instances and the traffic tools of one bench invocation."""

    def __init__(
        self,
        *,
        workdir: Path,
        rules: int = 2000,
        routes: int = 8192,
        neighbour_mb: int = 256,
        prefix: str | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.workdir = workdir
        self.rules = rules
        self.routes = routes
        self.neighbour_mb = neighbour_mb
        self.p = prefix or f"nn{os.getpid() % 100000}"
        self.log = log
        self.gen_ns, self.sink_ns, self.br_ns = f"{self.p}-gen", f"{self.p}-sink", f"{self.p}-br"
        self.cat: CatManager | None = None
        self.target_cpu = 0
        self.neighbour_cpus: list[int] = []
        self.current = ""
        self.cat_reason = "not probed"
        self.targets: dict[str, dict[str, Any]] = {}
        self.cpus = sorted(os.sched_getaffinity(0))
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = InstancesConfig.model_validate(
            {
                "pool_scale": 0,
                "builtin_templates": False,
                "cpus": ",".join(str(c) for c in self.cpus),
                "cpu_overcommit": 4.0,
            }
        )
        self.manager = Manager(config, Store(self.workdir / "db.sqlite"), self.workdir / "inst")
        self.started = False

    # ------------------------------------------------------------------ set-up
    def up(self) -> None:
        if len(self.cpus) < 2:
            raise BenchmarkFailure("the noisy-neighbour bench needs at least 2 CPUs")
        for ns in (self.gen_ns, self.sink_ns, self.br_ns):
            netns.create(ns)
        self.manager.start()
        self.started = True
        self._networks()
        self._templates()
        self._instances()
        self._cat()

    def _networks(self) -> None:
        for side, subnet in (("a", "10.77.1.0/24"), ("b", "10.77.2.0/24")):
            self.manager.create_network(
                NetworkSpec(
                    name=f"{self.p}-{side}",
                    bridge=f"{self.p}{side}",
                    netns=self.br_ns,
                    subnet=subnet,
                )
            )
        br = ["ip", "-n", self.br_ns]
        for ns, side, ifname, addr, via, peer in (
            (self.gen_ns, "a", "g0", "10.77.1.2/24", "10.77.1.1", "10.77.2.0/24"),
            (self.sink_ns, "b", "s0", "10.77.2.2/24", "10.77.2.1", "10.77.1.0/24"),
        ):
            port = f"{self.p}{side}p"
            _run([*br, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns])
            _run([*br, "link", "set", port, "master", f"{self.p}{side}", "up"])
            _run(["ip", "-n", ns, "addr", "add", addr, "dev", ifname])
            _run(["ip", "-n", ns, "link", "set", ifname, "up"])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            _run(["ip", "-n", ns, "route", "add", peer, "via", via])
            if ns == self.sink_ns:
                _run(["ip", "-n", ns, "route", "add", "100.64.0.0/10", "via", via])
            for knob in ("tx", "rx"):
                subprocess.run(
                    ["ip", "netns", "exec", ns, "ethtool", "-K", ifname, knob, "off"],
                    capture_output=True,
                    check=False,
                )

    def _templates(self) -> None:
        ifaces = [
            {"name": "eth0", "network": f"{self.p}-a"},
            {"name": "eth1", "network": f"{self.p}-b"},
        ]
        for name in ("vfw", "vrouter"):
            self.manager.create_template(
                TemplateSpec.model_validate(
                    {
                        "name": name,
                        "command": ["/bin/sleep", "100000"],
                        "interfaces": ifaces,
                        "resources": {"cpus": 1.0, "memory_mb": 32},
                        "pool": {"size": 0},
                        "labels": {"role": "target"},
                    }
                )
            )
        self.manager.create_template(
            TemplateSpec.model_validate(
                {
                    "name": "noisy",
                    "image": ensure_python(self.manager.images),  # the walker is Python
                    "command": ["/usr/bin/python3", "/.fe/walker.py", str(self.neighbour_mb), "2"],
                    "files": {"walker.py": WALKER},
                    "resources": {"cpus": 0.5, "memory_mb": 3 * self.neighbour_mb + 64},
                    "pool": {"size": 0},
                }
            )
        )

    def _target_request(self, name: str, anti: list[str]) -> Any:
        return InstanceRequest.model_validate(
            {
                "name": f"{self.p}-{name}",
                "template": name,
                "interfaces": {
                    "eth0": {"addresses": ["10.77.1.1/24"]},
                    "eth1": {"addresses": ["10.77.2.1/24"]},
                },
                "resources": {"cpus": 0.01},
                "labels": {"role": "target"},
                "anti_affinity": anti,
            }
        )

    def _instances(self) -> None:
        # The first target fixes the target CPU; the pinned neighbour avoids it.
        view = self.manager.create_instance(self._target_request("vfw", []))
        self.current = "vfw"
        self.target_cpu = view.cpus[0]
        self.targets["vfw"] = {"pid": view.pid, "name": view.name}
        # The neighbour: two walker processes, on every CPU or pinned away from the target.
        for name, cpus, anti in (
            ("free", float(len(self.cpus)), []),
            ("pinned", 1.0, ["role=target"]),
        ):
            view = self.manager.create_instance(
                InstanceRequest.model_validate(
                    {
                        "name": f"{self.p}-noisy-{name}",
                        "template": "noisy",
                        "resources": {"cpus": cpus},
                        "labels": {"role": f"neighbour-{name}"},
                        "anti_affinity": anti,
                    }
                )
            )
            self.manager.pause(view.name)
            if name == "pinned":
                if self.target_cpu in view.cpus:
                    raise BenchmarkFailure(f"pinned neighbour on the target's CPU {view.cpus}")
                self.neighbour_cpus = view.cpus
        self.log(f"target CPU {self.target_cpu}; pinned neighbour on CPU(s) {self.neighbour_cpus}")

    def _cat(self) -> None:
        fs = RealResctrlFS()
        support = probe(fs)
        self.cat_reason = support.reason
        if not support.supported:
            return
        self.cat = CatManager(
            CatConfig(),
            Store(self.workdir / "cat.sqlite"),
            fs,
            instance_pid=self._pid_of,
        )
        self.cat.start()

    def _pid_of(self, name: str) -> int | None:
        inst = self.manager.instances.get(name)
        return inst.pid if inst is not None and inst.state == "running" else None

    # ------------------------------------------------------------------ one target
    def _nsenter(self, pid: int) -> list[str]:
        return ["nsenter", "-t", str(pid), "-n", "--"]

    def configure(self, target: str) -> None:
        """Make ``target`` the instance on the wire (one at a time: they share addresses) and
        load its rule set or route table."""
        if target != self.current:
            self.manager.delete_instance(self.targets[self.current]["name"])
            view = self.manager.create_instance(
                self._target_request(target, ["role=neighbour-pinned"])
            )
            if view.cpus != [self.target_cpu]:
                raise BenchmarkFailure(f"{target} placed on {view.cpus}, not {self.target_cpu}")
            self.targets[target] = {"pid": view.pid, "name": view.name}
            self.current = target
        info = self.targets[target]
        enter = self._nsenter(info["pid"])
        _run([*enter, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        rnd = random.Random(7)  # noqa: S311 (a reproducible rule set, not a secret)
        if target == "vfw":
            rules = [
                f"ip saddr 198.51.{i // 250}.{i % 250 + 1} "
                f"udp dport {1024 + rnd.randrange(60000)} drop"
                for i in range(self.rules)
            ]
            script = (
                "table inet fe_vfw {\n chain forward_filter {\n"
                "  type filter hook forward priority 0; policy drop;\n"
                + "".join(f"  {r}\n" for r in rules)
                + "  ip saddr 10.77.1.0/24 accept\n  ip daddr 10.77.1.0/24 accept\n }\n}\n"
            )
            _run([*enter, "nft", "-f", "-"], stdin=script)
        if target == "vrouter":
            lines = [
                f"route add 100.{64 + i // 256}.{i % 256}.0/24 via 10.77.2.2"
                for i in range(self.routes)
            ]
            _run([*enter, "ip", "-batch", "-"], stdin="\n".join(lines) + "\n")
        # The previous target had the same addresses and another MAC: forget it, then resolve
        # neighbours on every hop before anything is timed (a ping through the target).
        for ns in (self.gen_ns, self.sink_ns):
            _run(["ip", "-n", ns, "neigh", "flush", "all"])
        _run(
            [
                "ip",
                "netns",
                "exec",
                self.gen_ns,
                "ping",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "2",
                "10.77.2.2",
            ]
        )
        self.dst_mac = _mac(enter, "eth0")
        self.src_mac = _mac(["ip", "netns", "exec", self.gen_ns], "g0")
        self._write_streams(target)

    def _destinations(self, target: str, count: int) -> list[str]:
        if target == "vrouter":
            picks = random.Random(11).sample(  # noqa: S311 (reproducible destinations)
                range(self.routes), min(count, self.routes)
            )
            return [f"100.{64 + i // 256}.{i % 256}.{1 + i % 200}" for i in picks]
        return ["10.77.2.2"] * count

    def _write_streams(self, target: str) -> None:
        dsts = self._destinations(target, 256)
        frames = [
            udp_frame(
                dst_mac=self.dst_mac,
                src_mac=self.src_mac,
                src="10.77.1.2",
                dst=dst,
                dport=9 + i % 64,
                ident=i % 1000,
            )
            for i, dst in enumerate(dsts)
        ]
        self.trafgen_cfg = self.workdir / f"{target}.trafgen"
        self.trafgen_cfg.write_text(
            "".join("{ " + ", ".join(f"0x{b:02x}" for b in f) + " }\n" for f in frames)
        )
        self.pcap_path = self.workdir / f"{target}.pcap"
        self.pcap_path.write_bytes(pcap.build(frames))
        self.probe_dst = dsts[0]

    # ------------------------------------------------------------------ scenarios
    def scenario(self, name: str) -> None:
        """Freeze/thaw the neighbours (and lay the CoS model) for scenario ``name``."""
        free, pinned = f"{self.p}-noisy-free", f"{self.p}-noisy-pinned"
        wanted = {"baseline": set(), "neighbour": {free}}.get(name, {pinned})
        for inst_name in (free, pinned):
            state = self.manager.instances[inst_name].state
            if inst_name in wanted and state == "paused":
                self.manager.resume(inst_name)
            elif inst_name not in wanted and state == "running":
                self.manager.pause(inst_name)
        if name.startswith("cat-") and self.cat is not None:
            model = name.removeprefix("cat-")
            roles = {role for role, _ in MODELS[model]}
            names = {"noisy": "fe-noisy"}
            cpus = {}
            if "target" in roles:  # else the target's CPU stays in the default group ("rest")
                names["target"] = "fe-target"
                cpus["target"] = str(self.target_cpu)
            # replace: a class of the previous model (e.g. 3-3-3-3's target2) must not linger.
            self.cat.apply_preset(model, PresetRequest(names=names, cpus=cpus, replace=True))
            self.cat.bind(pinned, "fe-noisy", self.manager.instances[pinned].pid or 0)
        elif self.cat is not None and self.cat.classes:
            self.cat.reset()  # the scenarios without CAT run on an unpartitioned cache
        time.sleep(0.3)  # let a thawed walker get going

    # ------------------------------------------------------------------ measurements
    def _sink_count(self) -> int:
        listing = list_sink(self.sink_ns, SINK_TABLE)
        if listing.returncode != 0:
            raise BenchmarkFailure(f"sink counter: {listing.stderr.strip()}")
        return sum(rule_counters(listing.stdout))

    def _start(self, argv: list[str], log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.gen_ns, "taskset", "-c", str(self.target_cpu), *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait_flowing(self, proc: subprocess.Popen[bytes], log: Any) -> None:
        """Wait (deadline 10 s) until the tool's frames arrive at the sink, then a bit more.

        On a loaded host a tool can take a second to start; a measurement window opened on a
        fixed delay would then cover part of its start-up (seen here as near-zero rates).
        """
        start = self._sink_count()
        deadline = time.monotonic() + 10.0
        while self._sink_count() == start:
            if proc.poll() is not None:
                log.seek(0)
                raise BenchmarkFailure(f"generator exited: {log.read().decode()[-300:]}")
            if time.monotonic() > deadline:
                raise BenchmarkFailure("no generator frame reached the sink within 10 s")
            time.sleep(0.02)
        time.sleep(0.2)  # past the tool's start-up burst

    def throughput(self, duration: float) -> float:
        """Frames per second past the target while trafgen sends flat out."""
        argv = [
            "trafgen",
            "-o",
            "g0",
            "-i",
            str(self.trafgen_cfg),
            "-P",
            "1",
            "--no-sock-mem",
            "--notouch-irq",
            "--no-cpu-stats",
        ]
        with tempfile.TemporaryFile() as log:
            proc = self._start(argv, log)
            try:
                self._wait_flowing(proc, log)
                c0, t0 = self._sink_count(), time.monotonic()
                time.sleep(duration)
                c1, t1 = self._sink_count(), time.monotonic()
            finally:
                stop_group(proc)
        return (c1 - c0) / (t1 - t0)

    def latency(self, duration: float, load_pps: int, probes: int) -> tuple[list[float], int]:
        """One-way latency of ``probes`` probes under an even ``load_pps`` load (tcpreplay)."""
        argv = [
            "tcpreplay",
            "-i",
            "g0",
            "-q",
            "--preload-pcap",
            "--loop=0",
            f"--pps={load_pps}",
            str(self.pcap_path),
        ]

        def frame(ident: int) -> bytes:
            return udp_frame(
                dst_mac=self.dst_mac,
                src_mac=self.src_mac,
                src="10.77.1.2",
                dst=self.probe_dst,
                dport=9,
                ident=ident,
            )

        probe = LatencyProbe(
            send_netns=self.gen_ns,
            send_ifname="g0",
            recv_netns=self.sink_ns,
            recv_ifname="s0",
            make_frame=frame,
        )
        with tempfile.TemporaryFile() as log:
            proc = self._start(argv, log)
            try:
                self._wait_flowing(proc, log)
                probe.start(delay_s=0.1, duration_s=duration, count=probes)
                time.sleep(0.1 + duration)
                samples = probe.stop()
            finally:
                stop_group(proc)
        return list(samples), probes

    def calibrate(self, duration: float) -> float:
        """Saturation throughput (pps), to size the latency phase's load."""
        result = install_sink(self.sink_ns, SINK_TABLE, "s0", ["counter drop"])
        if result.returncode != 0:
            raise BenchmarkFailure(f"sink: {result.stderr.strip()}")
        try:
            rates = sorted(self.throughput(duration) for _ in range(3))
        finally:
            remove_sink(self.sink_ns, SINK_TABLE)
        return rates[1]  # the median of three: one slow start or burst does not set the load

    def trial(
        self,
        target: str,
        scenario: str,
        rnd: int,
        *,
        tp_s: float,
        lat_s: float,
        load_pps: int,
        probes: int,
    ) -> Trial:
        result = install_sink(self.sink_ns, SINK_TABLE, "s0", ["counter drop"])
        if result.returncode != 0:
            raise BenchmarkFailure(f"sink: {result.stderr.strip()}")
        cpu0 = self.neighbour_cpu_s()
        try:
            kpps = self.throughput(tp_s) / 1000
            samples, sent = self.latency(lat_s, load_pps, probes)
        finally:
            remove_sink(self.sink_ns, SINK_TABLE)
        stats = latency_stats(samples)
        avg, p99, worst = stats if stats is not None else (None, None, None)
        busy = self.neighbour_cpu_s() - cpu0
        return Trial(target, scenario, rnd, kpps, avg, p99, worst, len(samples), sent, busy)

    def neighbour_cpu_s(self) -> float:
        """CPU seconds the neighbour instances' tasks have used (to show it really ran)."""
        ticks = 0
        for name in (f"{self.p}-noisy-free", f"{self.p}-noisy-pinned"):
            inst = self.manager.instances.get(name)
            if inst is None or inst.pid is None:
                continue
            for tid in instance_tasks(inst.pid):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    fields = Path(f"/proc/{tid}/stat").read_text().rsplit(")", 1)[1].split()
                    ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    # ------------------------------------------------------------------ tear-down
    def down(self) -> None:
        if self.cat is not None:
            with contextlib.suppress(Exception):
                self.cat.reset()
            self.cat.stop()
        if self.started:
            with contextlib.suppress(Exception):
                self.manager.purge()
        for ns in (self.gen_ns, self.sink_ns, self.br_ns):
            with contextlib.suppress(Exception):
                if netns.exists(ns):
                    netns.delete(ns)
        shutil.rmtree(self.workdir / "inst", ignore_errors=True)


def run_noisy(
    *,
    runs_dir: Path,
    rounds: int,
    throughput_s: float,
    latency_s: float,
    probes: int,
    load_fraction: float,
    rules: int,
    routes: int,
    neighbour_mb: int,
    targets: list[str],
    log: Callable[[str], None] = print,
) -> tuple[Path, list[Cell], bool]:
    """The whole experiment: the run directory (written after every trial), the summary, and
    whether Ctrl-C cut it short (what was measured is kept)."""
    run_dir = new_run_dir("noisy", runs_dir)
    config = {
        "rounds": rounds,
        "throughput_s": throughput_s,
        "latency_s": latency_s,
        "probes": probes,
        "load_fraction": load_fraction,
        "rules": rules,
        "routes": routes,
        "neighbour_mb": neighbour_mb,
        "targets": targets,
        "frame_size": FRAME_SIZE,
    }
    write_json(run_dir / "config.json", config)
    write_json(run_dir / "machine.json", describe(include_tools=False))
    rig = NoisyRig(
        workdir=Path(tempfile.mkdtemp(prefix="fe-noisy-")),
        rules=rules,
        routes=routes,
        neighbour_mb=neighbour_mb,
        log=log,
    )
    trials: list[Trial] = []
    cells: list[Cell] = []
    loads: dict[str, int] = {}
    interrupted = False
    try:
        rig.up()
        scenarios = scenarios_for(list(MODELS), rig.cat is not None)
        log(f"CAT: {rig.cat_reason}")
        for target in targets:
            rig.configure(target)
            rig.scenario("baseline")
            # The latency phase's load: a fraction of this target's baseline throughput.
            load_pps = max(1000, int(rig.calibrate(throughput_s) * load_fraction))
            loads[target] = load_pps
            log(f"{target}: latency load {load_pps} pps")
            for rnd in range(rounds):
                for scenario in scenarios:
                    rig.scenario(scenario)
                    trial = rig.trial(
                        target,
                        scenario,
                        rnd,
                        tp_s=throughput_s,
                        lat_s=latency_s,
                        load_pps=load_pps,
                        probes=probes,
                    )
                    trials.append(trial)
                    log(_trial_line(trial))
                    cells = _write(run_dir, trials, scenarios, rig.cat_reason, loads)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        rig.down()
        shutil.rmtree(rig.workdir, ignore_errors=True)
    return run_dir, cells, interrupted


def _write(
    run_dir: Path,
    trials: list[Trial],
    scenarios: list[str],
    cat_reason: str,
    loads: dict[str, int],
) -> list[Cell]:
    write_csv(run_dir / "trials.csv", list(Trial.__dataclass_fields__), [t.row() for t in trials])
    cells = summarise(trials, scenarios)
    write_json(
        run_dir / "results.json",
        {
            "scenarios": scenarios,
            "cat": cat_reason,
            "latency_load_pps": loads,
            "ci_note": CI_NOTE,
            "cells": [c.row() for c in cells],
            "figures": ["noisy.png"] if cells else [],
        },
    )
    if cells:
        chart(
            cells,
            scenarios,
            run_dir / "noisy.png",
            "Noisy neighbour: target throughput and latency (95% CI; % vs baseline)",
        )
    return cells


def _trial_line(trial: Trial) -> str:
    def us(value: float | None) -> str:
        return "       -" if value is None else f"{value:8.1f}"

    return (
        f"{trial.target:8} {trial.scenario:10} round {trial.round}: "
        f"{trial.throughput_kpps:8.1f} kpps, latency avg {us(trial.lat_avg_us)} "
        f"p99 {us(trial.lat_p99_us)} max {us(trial.lat_max_us)} us "
        f"({trial.probes}/{trial.probes_sent} probes back; neighbour CPU "
        f"{trial.neighbour_cpu_s:.2f} s)"
    )
