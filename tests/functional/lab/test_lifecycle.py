"""Lab life cycle on the real kernel: up, refuse twice, down leaves nothing, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from fluidedge.lab import LabAlreadyUpError, LabNotUpError, build
from fluidedge.lab.lab import Lab
from fluidedge.lab.state import process_alive, state_path
from fluidedge.linux import netns
from tests.fixtures.lab import LabFactory, lab_leftovers, unique_prefix
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.root


def _ping(lab: Lab, ue: str, dst: str) -> bool:
    return lab.run(ue, ["ping", "-c", "1", "-W", "1", dst]).returncode == 0


def test_up_down_leaves_nothing_behind() -> None:
    prefix = unique_prefix()
    started = time.monotonic()
    lab = Lab.up(prefix=prefix)
    took_up = time.monotonic() - started
    try:
        assert all(netns.exists(ns) for ns in lab.namespaces)
        assert len(lab.namespaces) == 14
        assert all(p.alive for p in lab.processes())
        assert _ping(lab, "ue1", str(lab.pdn_address))
        # nothing of the lab in the root namespace
        root_links = subprocess.run(
            ["ip", "-j", "link"], capture_output=True, text=True, check=True
        ).stdout
        assert not any(n in json.loads(root_links) for n in ("s1enb", "s1sgw", "apps0"))
        assert lab_leftovers(prefix), "the lab should be visible while up"
    finally:
        started = time.monotonic()
        lab.down()
        took_down = time.monotonic() - started
    assert lab_leftovers(prefix) == []
    # How long up and down take is a figure (bench/lab_forwarding.py reports it), not a promise.
    print(f"lab up {took_up:.2f} s, down {took_down:.2f} s")  # -s: figures
    assert build.down(prefix) == []  # idempotent


def test_up_refuses_when_already_up(lab_factory: LabFactory) -> None:
    lab = lab_factory()
    with pytest.raises(LabAlreadyUpError, match="already up"):
        Lab.up(prefix=lab.prefix)
    assert all(p.alive for p in lab.processes())  # the refused attempt touched nothing
    assert Lab.attach(lab.prefix).bearers == lab.bearers


def test_attach_unknown_lab() -> None:
    with pytest.raises(LabNotUpError):
        Lab.attach(unique_prefix())


def test_down_after_processes_crashed(lab_factory: LabFactory) -> None:
    lab = lab_factory()
    victims = lab.processes()[:3]
    for p in victims:
        os.kill(p.pid, signal.SIGKILL)
    assert wait_until(lambda: not any(p.alive for p in Lab.attach(lab.prefix).processes()[:3]))
    # a stray process someone started inside the lab is removed too
    stray = subprocess.Popen(
        lab.argv("ue2", ["sleep", "300"]), stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        lab.down()
        assert stray.wait(timeout=5) != 0
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
    assert lab_leftovers(lab.prefix) == []


def test_down_after_half_finished_up() -> None:
    """`fluidedge lab up` killed -9 while it starts processes: `down` still removes all."""
    prefix = unique_prefix()
    cli = subprocess.Popen(
        [sys.executable, "-m", "fluidedge", "lab", "up", "--prefix", prefix],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def spawning() -> bool:
            try:
                return bool(json.loads(state_path(prefix).read_text())["processes"])
            except (OSError, ValueError, KeyError):
                return False

        assert wait_until(spawning, timeout=20, period=0.005)
        cli.kill()
        cli.wait()
        state = json.loads(state_path(prefix).read_text())
        assert state["phase"] == "creating"
        assert any(netns.exists(ns) for ns in state["namespaces"])
        assert any(process_alive(p["pid"], p["start_time"]) for p in state["processes"])
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        removed = build.down(prefix)
    assert any(item.startswith("namespace") for item in removed)
    assert lab_leftovers(prefix) == []


def test_cli_up_status_exec_down() -> None:
    prefix = unique_prefix()
    env = {**os.environ, "FLUIDEDGE_LAB_PREFIX": prefix}

    def fe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fluidedge", "lab", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ul_packets() -> int:
        return int(
            json.loads(fe("status", "--json").stdout)["nodes"]["enb2"]["bearers"]["ue3"][
                "ul_packets"
            ]
        )

    try:
        up = fe("up")
        assert up.returncode == 0, up.stderr
        assert f"lab {prefix} up" in up.stdout
        assert "0x1001" in up.stdout
        assert "0x2001" in up.stdout
        assert "DNS 198.18.200.53:53" in up.stdout
        again = fe("up")
        assert again.returncode == 1
        assert "already up" in again.stderr
        ping = fe("exec", "ue3", "--", "ping", "-c", "1", "-W", "2", "198.18.200.10")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        doc = json.loads(fe("status", "--json").stdout)
        assert doc["phase"] == "up"
        assert all(p["alive"] for p in doc["processes"])
        assert wait_until(lambda: ul_packets() >= 1)
        table = fe("status").stdout
        assert "ue3" in table
        assert "s1enb" in table
    finally:
        down = fe("down")
    assert down.returncode == 0
    assert lab_leftovers(prefix) == []


@pytest.mark.parametrize("mode", ["tof", "routed"])
def test_insertion_modes(lab_factory: LabFactory, mode: str) -> None:
    lab = lab_factory(mode=mode)
    links = json.loads(lab.run("host", ["ip", "-j", "link", "show"], check=True).stdout)
    by_name = {link["ifname"]: link for link in links}
    for dev in (lab.enb_side_if, lab.sgw_side_if):
        assert "UP" in by_name[dev]["flags"]
        assert "master" not in by_name[dev]  # unbridged in both modes
    assert "br0" not in by_name
    # tof: nothing forwards until a TOF does; routed: the kernel forwards
    assert _ping(lab, "ue1", str(lab.pdn_address)) == (mode == "routed")


def test_concurrent_ups_of_one_prefix_start_one_lab() -> None:
    prefix = unique_prefix()
    argv = [sys.executable, "-m", "fluidedge", "lab", "up", "--prefix", prefix]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
        assert sorted(code for code, _ in results) == [0, 1]
        assert any("already up" in err or "being brought up" in err for _, err in results)
        lab = Lab.attach(prefix)
        assert all(p.alive for p in lab.processes())
        assert _ping(lab, "ue4", str(lab.pdn_address))
    finally:
        for p in procs:
            if p.stderr:
                p.stderr.close()
        build.down(prefix)
    assert lab_leftovers(prefix) == []


def test_status_watch_stops_cleanly_on_ctrl_c(lab_factory: LabFactory) -> None:
    lab = lab_factory()
    watcher = subprocess.Popen(
        [sys.executable, "-m", "fluidedge", "lab", "status", "--watch", "--prefix", lab.prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    try:
        # printed once the live view is up: from then on Ctrl-C is handled, even when loaded
        assert "Ctrl-C to stop" in watcher.stdout.readline()
        watcher.send_signal(signal.SIGINT)
        # The deadline bounds a failure (a watch that ignores Ctrl-C), not the expected time: a
        # refresh already under way on a loaded machine finishes first.
        out, err = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()  # reaps it and closes its pipes, even after a failure
    assert watcher.returncode == 0, err
    assert "Traceback" not in err
    assert "ue1" in out
    assert all(p.alive for p in lab.processes())  # the lab is left running


def test_watch_stops_on_event(lab_factory: LabFactory) -> None:
    import io
    import threading

    from rich.console import Console

    from fluidedge.lab.live import live_table, watch

    lab = lab_factory()
    stop = threading.Event()
    buffer = io.StringIO()
    renders = [0]

    def renderer(lab: Lab) -> Any:
        renders[0] += 1
        return live_table(lab)

    worker = threading.Thread(
        target=watch,
        args=(lab,),
        kwargs={
            "console": Console(file=buffer, width=120),
            "period": 0.1,
            "stop": stop,
            "renderer": renderer,
        },
    )
    worker.start()
    # stop it from inside its refresh loop: once it has refreshed at least once
    assert wait_until(lambda: renders[0] >= 2, timeout=30)
    stop.set()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert "0x1001" in buffer.getvalue()
