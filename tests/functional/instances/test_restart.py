"""``restart = "always"``: an instance whose workload is gone is made again, on real runc.

- its workload killed while the manager runs: made again with the same id, host veth, address
  and request (its page served again), ``restarts`` counted, the row saying so;
- the default (``no``): it stays exited;
- found gone at start (the daemon stopped, the workload killed meanwhile): made again by the
  next manager's start;
- deleted while it waits for its back-off: not made again.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from fluidedge.instances.manager import Manager
from fluidedge.instances.models import InstanceRequest, NetworkSpec, TemplateSpec
from fluidedge.linux import procfs
from tests.fixtures.wait import wait_for

from .conftest import ManagerFactory, bridge_name, in_netns

pytestmark = pytest.mark.root

SUBNET = "198.18.81"


def _web(restart: str) -> TemplateSpec:
    return TemplateSpec.model_validate(
        {
            "name": "web",
            "command": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/.fe/www"],
            "files": {"www/index.html": "hello from {name}\n"},
            "interfaces": [{"name": "eth0", "network": "rnet"}],
            "readiness": {"kind": "tcp", "port": 8080},
            "pool": {"size": 1},
            "restart": restart,
        }
    )


def _setup(manager: Manager, restart: str) -> None:
    manager.create_network(
        NetworkSpec(name="rnet", bridge=bridge_name("r"), subnet=f"{SUBNET}.0/24")
    )
    manager.create_template(_web(restart))


def _create(manager: Manager, name: str, index: int, **extra: object) -> tuple[str, int]:
    made = manager.create_instance(
        InstanceRequest.model_validate(
            {
                "name": name,
                "template": "web",
                "interfaces": {"eth0": {"addresses": [f"{SUBNET}.{index}/24"]}},
                "env": {"GREETING": "kept"},
                **extra,
            }
        )
    )
    assert made.pid is not None
    return made.id, made.pid


def _page(pid: int, index: int) -> str:
    return in_netns(pid, "curl", "-s", "-m", "2", f"http://{SUBNET}.{index}:8080/").stdout


def _running_again(manager: Manager, name: str, old_pid: int) -> int:
    def again() -> int | None:
        inst = manager.instances.get(name)
        if inst is None or inst.pid in (None, old_pid) or inst.current_state() != "running":
            return None
        return inst.pid

    return int(wait_for(again, 30, f"{name} made again"))


def test_a_killed_workload_is_made_again_as_it_was(manager_factory: ManagerFactory) -> None:
    manager = manager_factory(pool_scale=1)
    _setup(manager, "always")
    cid, pid = _create(manager, "w1", 2)
    assert manager.instances["w1"].view().restart == "always"
    host_ifname = manager.instances["w1"].interfaces[0].host_ifname
    os.kill(pid, signal.SIGKILL)
    new_pid = _running_again(manager, "w1", pid)
    inst = manager.instances["w1"]
    assert inst.id == cid  # same container id: same veth, directory, switch port names
    assert inst.interfaces[0].host_ifname == host_ifname
    assert inst.interfaces[0].addresses == [f"{SUBNET}.2/24"]
    assert inst.restarts == 1
    assert inst.request is not None
    assert inst.request["env"] == {"GREETING": "kept"}
    assert _page(new_pid, 2) == "hello from w1\n"
    assert b"GREETING=kept" in Path(f"/proc/{new_pid}/environ").read_bytes().split(b"\0")
    stored = manager.tables.store.query(
        "SELECT record FROM inst_instances WHERE name = ?", ("w1",)
    )[0]["record"]
    assert '"restarts": 1' in stored
    manager.delete_instance("w1")
    assert "w1" not in manager.instances


def test_the_default_leaves_an_exited_instance_exited(manager_factory: ManagerFactory) -> None:
    manager = manager_factory(pool_scale=1)
    _setup(manager, "no")
    _cid, pid = _create(manager, "w2", 3)
    assert manager.instances["w2"].view().restart == "no"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not procfs.process_running(pid), 10, "the workload gone")
    time.sleep(2)  # the first back-off would have passed
    inst = manager.instances["w2"]
    assert inst.current_state() == "exited"
    assert inst.restarts == 0
    assert manager.stats()["restarts_pending"] == {}


def test_the_request_may_ask_for_it_on_a_template_that_does_not(
    manager_factory: ManagerFactory,
) -> None:
    manager = manager_factory(pool_scale=1)
    _setup(manager, "no")
    _cid, pid = _create(manager, "w3", 4, restart="always")
    os.kill(pid, signal.SIGKILL)
    _running_again(manager, "w3", pid)
    assert manager.instances["w3"].restarts == 1


def test_an_instance_found_gone_at_start_is_made_again(manager_factory: ManagerFactory) -> None:
    first = manager_factory(pool_scale=1)
    _setup(first, "always")
    cid, pid = _create(first, "w4", 5)
    first.stop()
    os.kill(pid, signal.SIGKILL)  # while no daemon runs (a reboot, a crash)
    wait_for(lambda: not procfs.process_running(pid), 10, "the workload gone")
    again = Manager(first.config, first.tables.store, first.state_dir)
    again.start()
    try:
        new_pid = _running_again(again, "w4", pid)
        assert again.instances["w4"].id == cid
        assert again.instances["w4"].restarts == 1
        assert _page(new_pid, 5) == "hello from w4\n"
    finally:
        again.purge()


def test_a_deleted_instance_waiting_for_its_back_off_is_not_made_again(
    manager_factory: ManagerFactory,
) -> None:
    manager = manager_factory(pool_scale=1)
    _setup(manager, "always")
    _cid, pid = _create(manager, "w5", 6)
    os.kill(pid, signal.SIGKILL)  # ran for less than STABLE_S: a back-off of 1 s
    wait_for(lambda: "w5" in manager.stats()["restarts_pending"], 10, "w5 pending")
    manager.delete_instance("w5")
    assert manager.stats()["restarts_pending"] == {}
    time.sleep(2)
    assert "w5" not in manager.instances
