"""A long schemathesis run against a real daemon: every check, no exclusion (issue 11 item 8).

The CI test (tests/functional/daemon/test_schema.py) runs the same with a small budget. This
one runs as long as asked, with the configuration the test uses
(tests/functional/daemon/schemathesis.toml) and parts. The daemon runs in a private network
namespace, so the bridges a generated request creates live and die there; everything is
removed afterwards.

    .venv/bin/python bench/api_schema.py [--examples 500] [--max-time SECONDS] [--seed N]

Every part that runs on one host is enabled, as in the test: TOF, instances, security groups,
chains, ME platform, and CAT pointed at a resctrl mount that does not exist (never the host's:
a generated ``POST /v1/cat/reset`` must not touch a real cache layout), so it answers its
documented 501.

Needs root (namespace, runc). Prints schemathesis's report; exits with its status.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.fixtures.daemon
CONFIG = ROOT / "tests" / "functional" / "daemon" / "schemathesis.toml"
TOKEN = "bench-schema-token-" + "0" * 16


def _healthy(socket_path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(socket_path))
            sock.sendall(b"GET /healthz HTTP/1.0\r\nHost: fluidedge\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="max examples per operation")
    parser.add_argument("--max-time", type=int, default=None, help="time budget (seconds)")
    parser.add_argument("--seed", type=int, default=None, help="reproduce a run")
    args = parser.parse_args()

    from tests.fixtures.daemon import purge_instances_state, stop_switches, write_toml
    from tests.functional.daemon.test_schema import PARTS as SCHEMA_PARTS

    from fluidedge.linux import netns

    work = Path(tempfile.mkdtemp(prefix="fe-schema-"))
    state = work / "state"
    name = f"feschema{os.getpid() % 100000}"
    port = 8181
    parts = {**SCHEMA_PARTS, "cat": {"mount": str(work / "no-resctrl")}}
    config = {
        "state_dir": str(state),
        "api": {"port": port, "token": TOKEN, "socket": str(work / "api.sock")},
        **parts,
    }
    (work / "fluidedge.toml").write_text(write_toml(config))
    netns.create(name)
    log = (work / "daemon.log").open("ab")
    daemon = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{name}", "--", sys.executable, "-m", "fluidedge", "serve",
         "-c", str(work / "fluidedge.toml"), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _healthy(work / "api.sock"):
            if daemon.poll() is not None or time.monotonic() > deadline:
                print((work / "daemon.log").read_text(), file=sys.stderr)
                return 2
            time.sleep(0.1)
        argv = [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file", str(CONFIG),
            "run", f"http://127.0.0.1:{port}/openapi.json",
            "--checks", "all",
            "--header", f"Authorization: Bearer {TOKEN}",
            "--max-examples", str(args.examples),
            "--workers", "1",
        ]  # fmt: skip
        if args.max_time is not None:
            argv += ["--max-time", str(args.max_time)]
        if args.seed is not None:
            argv += ["--seed", str(args.seed)]
        return subprocess.run(["ip", "netns", "exec", name, *argv], check=False).returncode
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        log.close()
        purge_instances_state(state)
        stop_switches(state)
        netns.delete(name)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
