"""Packet capture inside a lab namespace with tcpdump (``-w`` pcap, read back by
:mod:`fluidedge.lab.packets`)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from fluidedge.lab.errors import LabSystemError


class Capture:
    """``with Capture(ns, iface, path): ...`` records what crosses ``iface`` into ``path``.

    Entering waits until tcpdump listens; leaving stops it (SIGINT, so the pcap is flushed)
    and the file is complete. ``bpf`` is an optional capture filter as an argv list
    (e.g. ``["udp", "port", "2152"]``).
    """

    def __init__(self, netns: str, iface: str, path: Path, bpf: list[str] | None = None) -> None:
        self.netns = netns
        self.iface = iface
        self.path = path
        self.bpf = bpf or []
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Capture:
        argv = [
            "ip", "netns", "exec", self.netns,
            "tcpdump", "-i", self.iface, "-n", "-U", "-s", "0", "-w", str(self.path),
            "--immediate-mode", *self.bpf,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        assert_stderr = self.proc.stderr
        if assert_stderr is None:  # pragma: no cover - PIPE always gives a stream
            raise LabSystemError("tcpdump has no stderr")
        said: list[str] = []
        while time.monotonic() < deadline:
            line = assert_stderr.readline()
            if "listening on" in line:
                return self
            said.append(line.strip())
            if not line and self.proc.poll() is not None:
                self.stop()  # its pipe closed
                # e.g. a stock Debian host's AppArmor profile for tcpdump, which lets it write
                # only files named like captures (*.pcap, *.cap, ...): its words say so
                raise LabSystemError(
                    f"tcpdump on {self.netns}/{self.iface} exited ({self.proc.returncode}): "
                    + (" ".join(filter(None, said))[-500:] or "no message")
                )
        self.stop()
        raise LabSystemError(f"tcpdump on {self.netns}/{self.iface} did not start")

    def stop(self) -> Path:
        if self.proc is not None and self.proc.poll() is None:
            time.sleep(0.05)  # let in-flight frames land
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.path

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
