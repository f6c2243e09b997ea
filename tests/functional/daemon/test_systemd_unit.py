"""The daemon under its own unit (``fluidedge install-service``) with systemd as PID 1, as an
operator runs it on a stock Debian host: the unit's sandbox (a read-only file system but for
the state, ``NoNewPrivileges``, the capability bounding set, the address families, a mount
namespace of its own) and systemd's cgroup delegation (``Delegate=yes``: the daemon stays in its
unit's cgroup, its instances go under ``/fluidedge``) must let every part work, and a restart or
a stop of the unit must keep the instances (``KillMode=process``). Debian's own Open vSwitch
service runs beside it, as on many NFV hosts: the daemon's ``ovs`` network must leave that
switch's kernel datapath alone.

Only systemd can say whether they do; these machines do not boot with it. The VM tier's
``systemd`` payload runs this file in a stock Debian kernel booted with systemd as PID 1
(``FLUIDEDGE_VM_INIT=systemd scripts/vmtest tests/functional/daemon/test_systemd_unit.py``,
or ``.venv/bin/python -m pytest tests/vm -m vm -k systemd``); elsewhere it is skipped, saying so.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fluidedge.core.client import Client
from fluidedge.instances.images import tools
from tests.e2e.secgroups.scenario import get, run, web_and_clients
from tests.fixtures.images import build_app_tree
from tests.fixtures.wait import wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

SYSTEMD = Path("/run/systemd/system").is_dir()  # sd_booted(3)
STATE = Path("/var/lib/fluidedge")
CONFIG = Path("/etc/fluidedge/fluidedge.toml")
UNIT = "fluidedge.service"
URL = "http://127.0.0.1:8181"
BRIDGE, SUBNET = "fesd0", "10.99.7"
OVS_BRIDGE, OVS_SUBNET = "fesdo0", "10.99.8"
# The host's own Open vSwitch (Debian's openvswitch-switch service), with a bridge and a port
# on the kernel datapath, as an NFV host often has.
HOST_OVS, HOST_BRIDGE, HOST_PORT = "openvswitch-switch", "hostbr0", "hostp0"
# Every part that runs on one host without a lab (the TOF's null backend needs no namespace),
# a Linux-bridge network for the security groups' scenario, and an ovs network (datapath
# auto: the kernel's is the host's switch's, so ours takes the userspace one).
PARTS = f"""
[instances]
pool_scale = 0.5
ovs_datapath = "auto"

[instances.networks.sdnet]
bridge = "{BRIDGE}"
subnet = "{SUBNET}.0/24"

[instances.networks.sdovs]
driver = "ovs"
bridge = "{OVS_BRIDGE}"
subnet = "{OVS_SUBNET}.0/24"

[tof]
backend = "none"

[secgroups]

[chains]

[mec]
"""


def _systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemctl", *args], capture_output=True, text=True, timeout=600, check=False
    )


def _journal(lines: int = 80) -> str:
    return subprocess.run(
        ["journalctl", "-u", UNIT, "--no-pager", "-n", str(lines), "-o", "cat"],
        capture_output=True, text=True, timeout=60, check=False,
    ).stdout  # fmt: skip


def _up(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def _start(http: httpx.Client, verb: str = "start") -> None:
    done = _systemctl(verb, UNIT)
    assert done.returncode == 0, f"systemctl {verb}: {done.stderr}\n{_journal()}"
    wait_for(lambda: _up(http), 20, lambda: f"the daemon's /healthz\n{_journal()}", period=0.5)


def _step(what: str) -> None:
    """Progress on the VM's console (``-s``): a TCG run takes minutes between steps."""
    print(f"systemd unit test: {time.strftime('%H:%M:%S')} {what}", flush=True)


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _archive_with_setuid_files(base: Path) -> Path:
    """A docker-archive (as ``docker save`` writes one, where an operator stages it: under
    /tmp) whose image holds a setuid and a setgid file, as distribution images do (su, passwd)."""
    tree = base / "tree"
    build_app_tree(tree)
    for name, mode in (("fe-setuid", 0o4755), ("fe-setgid", 0o2755)):  # not busybox applets
        (tree / "bin" / name).write_bytes(b"#!/bin/sh\n")
        (tree / "bin" / name).chmod(mode)
    tools.build_layout(base / "layout", tree, "app", ["--config.cmd=/bin/busybox"])
    archive = base / "suid-docker.tar"
    tools.copy_image("oci", base / "layout", "app", f"docker-archive:{archive}:app:1", base)
    return archive


def _host_ovs(*args: str) -> str:
    """The host's own switch (its default database), as its operator drives it."""
    done = subprocess.run(
        ["ovs-vsctl", "--timeout=60", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def host_ovs() -> Iterator[None]:
    """Debian's Open vSwitch service started, with a bridge and a port on the kernel datapath;
    removed and stopped afterwards."""
    done = _systemctl("start", HOST_OVS)
    assert done.returncode == 0, done.stderr
    try:
        subprocess.run(
            ["ip", "link", "add", HOST_PORT, "type", "veth", "peer", "hostp1"], check=True
        )
        _host_ovs("--may-exist", "add-br", HOST_BRIDGE)
        _host_ovs("--may-exist", "add-port", HOST_BRIDGE, HOST_PORT)
        yield
    finally:
        subprocess.run(
            ["ovs-vsctl", "--timeout=60", "--if-exists", "del-br", HOST_BRIDGE], check=False
        )
        subprocess.run(["ip", "link", "del", HOST_PORT], capture_output=True, check=False)
        _systemctl("stop", HOST_OVS, "ovs-vswitchd", "ovsdb-server")


def _host_ovs_intact() -> None:
    """The host's bridge keeps its port, in its database and on the kernel datapath."""
    assert _host_ovs("list-ports", HOST_BRIDGE) == HOST_PORT
    datapath = subprocess.run(["ovs-dpctl", "show"], capture_output=True, text=True, check=True)
    assert HOST_PORT in datapath.stdout, datapath.stdout


def _our_switch(*args: str) -> str:
    """The daemon's own switch of the host namespace (under its state directory)."""
    db = STATE / "instances" / "ovs" / "host" / "run" / "db.sock"
    done = subprocess.run(
        ["ovs-vsctl", f"--db=unix:{db}", "--timeout=30", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def unit() -> Iterator[httpx.Client]:
    """The unit installed and the config written (every part), not started; stopped, its
    instances deleted and its files removed afterwards."""
    done = subprocess.run(
        [sys.executable, "-m", "fluidedge", "install-service"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    CONFIG.write_text(CONFIG.read_text() + PARTS)
    assert _systemctl("daemon-reload").returncode == 0
    with httpx.Client(base_url=URL, timeout=120) as http:
        try:
            yield http
        finally:
            if _up(http):
                token = (STATE / "token").read_text().strip()
                auth = {"Authorization": f"Bearer {token}"}
                for inst in http.get("/v1/instances", headers=auth).json():
                    http.delete(f"/v1/instances/{inst['name']}", headers=auth)
            _systemctl("stop", UNIT)
            subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
            subprocess.run(
                [sys.executable, "-m", "fluidedge", "pool", "purge", "-c", str(CONFIG)],
                capture_output=True,
                timeout=300,
                check=False,
            )  # fmt: skip (the ovs network's switch and bridge, the pool's shells)
            Path("/etc/systemd/system", UNIT).unlink(missing_ok=True)
            _systemctl("daemon-reload")


@pytest.mark.skipif(
    not SYSTEMD,
    reason="needs systemd as PID 1: the VM tier's systemd payload (FLUIDEDGE_VM_INIT=systemd)",
)
@pytest.mark.timeout(3000)
def test_the_unit_runs_every_part_and_keeps_instances_across_restarts(
    host_ovs: None, unit: httpx.Client, tmp_path: Path
) -> None:
    http = unit
    _start(http)
    _step("started")
    assert _systemctl("is-active", UNIT).stdout.strip() == "active"

    # private state, made by systemd (StateDirectoryMode) and the daemon (its token)
    assert stat.S_IMODE(STATE.stat().st_mode) == 0o700
    assert stat.S_IMODE((STATE / "token").stat().st_mode) == 0o600
    http.headers["Authorization"] = f"Bearer {(STATE / 'token').read_text().strip()}"

    # cgroup v2: the instances under /fluidedge, the daemon in its unit's own cgroup, which
    # holds no child cgroups (systemd (re)starts the unit there)
    stats = http.get("/v1/stats").json()
    cgroup = stats["cgroup"]
    assert cgroup["mode"] == "v2", stats
    assert cgroup["parent"] == "/fluidedge", stats
    assert {"cpu", "memory", "pids"} <= set(cgroup["controllers"]), stats
    own = Path(f"/proc/{_main_pid()}/cgroup").read_text()
    assert own.strip() == f"0::/system.slice/{UNIT}", own
    assert stats["launcher"] == "c", stats  # gcc ran in the sandbox (its scratch in /tmp)

    _step("cgroups checked")
    # an instance from the built-in image, paused and resumed
    created = http.post("/v1/instances", json={"name": "unit1", "template": "idle"})
    assert created.status_code == 201, created.text
    pid = created.json()["pid"]
    assert created.json()["state"] == "running"
    for verb, state in (("pause", "paused"), ("resume", "running")):
        answer = http.post(f"/v1/instances/unit1/{verb}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == state
    _step("instance paused and resumed")
    # an image staged under /tmp, with setuid files, imported and run
    archive = _archive_with_setuid_files(tmp_path)
    body = {"name": "suidapp", "source": str(archive), "format": "docker-archive"}
    imported = http.post("/v1/images", json=body)
    assert imported.status_code == 201, f"{imported.text}\n{_journal()}"
    template = {"name": "suidapp", "image": "suidapp", "command": ["/bin/busybox", "sleep", "1000"]}
    made = http.post("/v1/templates", json=template)
    assert made.status_code == 201, made.text
    fresh = http.post("/v1/instances", json={"name": "unit2", "template": "suidapp"})
    assert fresh.status_code == 201, f"{fresh.text}\n{_journal()}"
    assert http.delete("/v1/instances/unit2").status_code == 204

    _step("image imported and run")
    # security groups on a Linux bridge (nft, br_netfilter, conntrack): a member of
    # "clients" gets the web app's page, an instance in the default group does not
    token = str(http.headers["Authorization"]).removeprefix("Bearer ")
    client = Client(URL, token, timeout=120)
    try:
        scene = web_and_clients(client, "sdnet", SUBNET, "sd")
    finally:
        client.close()

    _step("security groups enforced")
    # an ovs network beside the host's own Open vSwitch: our switch (started by the daemon, in
    # its sandbox) on the userspace datapath, the OVS renderer's groups enforced, the host's
    # switch untouched
    ovs_web, ovs_cli = ovs_scene(client_token=token)
    assert _our_switch("get", "Bridge", OVS_BRIDGE, "datapath_type") == "netdev"
    assert "another ovs-vswitchd runs in the host's namespace" in _journal(5000)
    _host_ovs_intact()

    _step("ovs network beside the host's switch")
    # a restart of the unit keeps the instance (KillMode=process) and re-adopts it, after
    # systemd has re-read its units (and re-set the controllers of the cgroups it manages)
    assert _systemctl("daemon-reload").returncode == 0
    _start(http, "restart")
    again = http.get("/v1/instances/unit1")
    assert again.status_code == 200, again.text
    assert (again.json()["state"], again.json()["pid"]) == ("running", pid)
    assert _pid_alive(pid)
    names = [g["id"] for g in http.get("/v1/security-groups").json()]
    assert "web" in names
    assert get(scene.c1["pid"], scene.app_ip) == "edge app app"  # the rules, restored
    assert get(scene.c2["pid"], scene.app_ip) == ""
    assert get(ovs_cli["pid"], ovs_web) == "edge app ovsapp"  # our switch, adopted
    _host_ovs_intact()
    # the check of the installed rules ran all along (every second) and found nothing lost
    assert "rules re-installed" not in _journal(5000)

    _step("restarted")
    # stopped, the instance still runs; started, it is deleted for real
    done = _systemctl("stop", UNIT)
    assert done.returncode == 0, done.stderr
    assert _pid_alive(pid)
    _start(http)
    assert http.delete("/v1/instances/unit1").status_code == 204
    wait_for(lambda: not _pid_alive(pid), 60, "the deleted instance's workload gone")


def ovs_scene(client_token: str) -> tuple[str, dict[str, object]]:
    """On the ovs network: the web app in group ``web`` and a client in ``clients`` (the
    groups of the Linux-bridge scenario), one in the default group; the app's address and the
    first client."""
    client = Client(URL, client_token, timeout=120)
    try:
        for name, command, groups in (
            ("ovsweb", ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/.fe/www"], ["web"]),
            ("ovscli", ["/bin/busybox", "sleep", "2147483647"], None),
        ):
            client.post(
                "/v1/templates",
                {
                    "name": name,
                    "command": command,
                    "files": {"www/index.html": "edge app {name}\n"},
                    "interfaces": [{"name": "eth0", "network": "sdovs", "security_groups": groups}],
                    "pool": {"size": 1},
                },
            )
        run(client, OVS_SUBNET, "ovsapp", "ovsweb", 5)
        cli = run(client, OVS_SUBNET, "ovsc1", "ovscli", 11, security_groups=["clients"])
        other = run(client, OVS_SUBNET, "ovsc2", "ovscli", 12)
    finally:
        client.close()
    web = f"{OVS_SUBNET}.5"
    wait_for(lambda: get(cli["pid"], web) == "edge app ovsapp", 60, "the app's page over ovs")
    assert get(other["pid"], web) == ""
    return web, cli


def _main_pid() -> int:
    shown = _systemctl("show", "-p", "MainPID", "--value", UNIT).stdout.strip()
    return int(shown)
