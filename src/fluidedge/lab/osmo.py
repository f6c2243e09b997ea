"""The osmo flavour's processes: osmo-ggsn and sgsnemu, supervised (``python -m`` inside a lab
namespace, like the emulated nodes).

Run as ``python -m fluidedge.lab.osmo SPEC.json``. This small supervisor is the process the lab
records: it writes the daemon's configuration, starts the Debian binary as its child (which dies
with it: ``PR_SET_PDEATHSIG``, so ``lab down`` or a kill -9 of the supervisor never leaves an
osmo process behind), waits until the binary is really usable (the GGSN's TUN has its address;
the UE's TUN, which sgsnemu creates and moves into the UE's namespace, has the address the GGSN
assigned), sets the TUN's MTU so G-PDUs fit the S1 MTU, then writes the ready file
(``{"address": ...}`` for a UE) that ``lab up`` waits for.

Signals: SIGTERM detaches cleanly: sgsnemu is asked to stop, which sends Delete PDP Context
Request, and is killed once the GGSN's response arrived (sgsnemu does not exit on its own after
it); osmo-ggsn just stops. SIGKILL of the supervisor is the "radio lost" detach: the child is
killed at once and the GGSN keeps the PDP context.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from fluidedge.linux import addrs, libc

# The lab's bound (``FLUIDEDGE_LAB_READY_TIMEOUT``, see :mod:`.build`) less the supervisor's start.
READY_TIMEOUT = max(12.0, float(os.environ.get("FLUIDEDGE_LAB_READY_TIMEOUT", "15")) - 3.0)
DETACH_TIMEOUT = 3.0
DELETE_RESPONSE = "Received delete PDP context response"


def _die_with_parent() -> None:
    """Child side of fork: be killed when the supervisor dies, whatever kills it."""
    libc.set_parent_death_signal(signal.SIGKILL)


def ggsn_config(spec: dict[str, Any]) -> str:
    """osmo-ggsn's VTY configuration: one APN with a dynamic IPv4 pool on a TUN.

    No ``echo-interval``: an SGSN's Echo Response carries its restart counter, which every
    sgsnemu re-attach increments (see :func:`sgsnemu_argv`), and a GGSN that sees it change
    releases all of that SGSN's contexts. GTP-C echoes still cross S1 (each sgsnemu sends one
    when it starts).
    """
    lines = [
        "log stderr",
        " logging filter all 1",
        " logging color 0",
        " logging print category 1",
        " logging timestamp 1",
        " logging level ggsn info",
        " logging level lgtp notice",
        "line vty",
        " no login",
        " bind 127.0.0.1",  # inside the GGSN's own namespace
        "ggsn ggsn0",
        f" gtp state-dir {spec['state_dir']}",
        f" gtp bind-ip {spec['address']}",
        " apn internet",
        "  gtpu-mode tun",
        f"  tun-device {spec['tun']}",
        "  type-support v4",
        f"  ip prefix dynamic {spec['pool']}",
        f"  ip dns 0 {spec['dns']}",
        f"  ip ifconfig {spec['pool']}",
        "  no shutdown",
        " default-apn internet",
        " no shutdown ggsn",
    ]
    return "\n".join(lines) + "\n"


def sgsnemu_argv(spec: dict[str, Any]) -> list[str]:
    """sgsnemu for one UE: a PDP context, its TUN (with a default route) in the UE's netns.

    Each attach is a restart of this SGSN: libgtp increments its restart counter (kept in the
    state directory) and starts its GTP-C sequence numbers at counter x 1024, so a re-attach
    never repeats the previous attach's sequence numbers (the GGSN would answer them from its
    60 s response cache with the old context). ``--norecovery`` keeps the counter out of the
    Create PDP Context Request, and the GGSN sends no echoes (see :func:`ggsn_config`), so the
    GGSN never learns of the restart and keeps the old context after a crash, as it does when
    a radio link is lost, instead of releasing every context of this peer. ``stdbuf -oL``:
    line-buffered output, so the supervisor sees the Delete PDP Context response when it comes.
    """
    state = spec["state_dir"]
    return [
        "stdbuf", "-oL", "-eL",
        "sgsnemu", "--listen", spec["address"], "--remote", spec["ggsn"], "--createif",
        "--defaultroute", "--norecovery", "--imsi", spec["imsi"], "--tun-device", spec["tun"],
        "--netns", spec["ue_netns"], "--statedir", state, "--pidfile", f"{state}/sgsnemu.pid",
    ]  # fmt: skip


def tun_address(netns: str | None, dev: str) -> str | None:
    """The IPv4 address of ``dev`` (in ``netns``), None while it has none or does not exist."""
    argv = addrs.argv(netns, dev, version=4)
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    if result.returncode != 0:
        return None
    device = addrs.parse(result.stdout).get(dev)
    found = device.of_version(4) if device is not None else ()
    return str(found[0].ip) if found else None


class Supervisor:
    """One osmo binary as a child: start, wait until usable, relay signals, mirror output."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.child: subprocess.Popen[str] | None = None
        self.deleted = threading.Event()

    def start(self, argv: list[str]) -> subprocess.Popen[str]:
        self.child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only, no locks taken
        )
        Path(self.spec["state_dir"], "child.pid").write_text(f"{self.child.pid}\n")
        if self.child.stdout is not None:
            threading.Thread(target=self._mirror, args=(self.child.stdout,), daemon=True).start()
        return self.child

    def _mirror(self, stream: IO[str]) -> None:
        for line in stream:
            sys.stdout.write(line)
            sys.stdout.flush()
            if DELETE_RESPONSE in line:
                self.deleted.set()

    def wait_ready(self, child: subprocess.Popen[str], netns: str | None, dev: str) -> str:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if child.poll() is not None:
                raise SystemExit(f"{self.spec['name']}: exited ({child.returncode})")
            address = tun_address(netns, dev)
            if address is not None:
                return address
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"{self.spec['name']}: {dev} has no address after {READY_TIMEOUT}s"
                )
            time.sleep(0.02)

    def stop(self, *_: object) -> None:
        """SIGTERM: a clean detach (sgsnemu: Delete PDP Context first), then the child ends."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        if self.spec["role"] == "sgsn":
            self.deleted.wait(DETACH_TIMEOUT)  # sgsnemu keeps running after the response
            child.kill()
        try:
            child.wait(DETACH_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m fluidedge.lab.osmo SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text())
    state = Path(spec["state_dir"])
    state.mkdir(parents=True, exist_ok=True)
    sup = Supervisor(spec)
    stopping = threading.Event()

    def on_signal(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if spec["role"] == "ggsn":
        binary = shutil.which("osmo-ggsn")
        if binary is None:
            print("osmo-ggsn not found: install the osmo-ggsn package (scripts/setup)")
            return 3
        cfg = state / "osmo-ggsn.cfg"
        cfg.write_text(ggsn_config(spec))
        child = sup.start([binary, "-c", str(cfg)])
        netns, dev = None, str(spec["tun"])
    else:
        if shutil.which("sgsnemu") is None:
            print("sgsnemu not found: install the osmo-ggsn package (scripts/setup)")
            return 3
        child = sup.start(sgsnemu_argv(spec))
        netns, dev = str(spec["ue_netns"]), str(spec["tun"])
    address = sup.wait_ready(child, netns, dev)
    mtu = ["ip", *(["-n", netns] if netns else []), "link", "set", "dev", dev, "mtu"]
    subprocess.run([*mtu, str(spec["mtu"])], check=True, timeout=10)
    ready = {"address": address, "attach": spec.get("attach", 0), "imsi": spec.get("imsi")}
    tmp = Path(f"{spec['ready_path']}.tmp")
    tmp.write_text(json.dumps(ready))
    tmp.replace(spec["ready_path"])
    while not stopping.wait(0.2):
        if child.poll() is not None:
            print(f"{spec['name']}: {spec['role']} exited ({child.returncode})")
            return 1
    sup.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
