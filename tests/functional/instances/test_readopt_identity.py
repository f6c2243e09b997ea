"""Re-adoption tells a waiting launcher from a workload by identity (per-shell token and
launcher binary), not by command line: a workload that imitates the launcher, down to exec'ing
``/.fe-launcher`` itself and blocking on its go FIFO, is re-adopted as the running instance it
is, while the real waiting launchers of the pool go back to their pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluidedge.core.store import Store
from fluidedge.instances.launcher import LAUNCHER_ARG, file_id, launcher_waiting
from fluidedge.instances.manager import Manager
from fluidedge.instances.models import InstanceRequest
from fluidedge.linux import procfs
from tests.fixtures.wait import wait_until

from .conftest import ManagerFactory

pytestmark = pytest.mark.root


def _argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


@pytest.mark.parametrize("kind", ["c", "sh"])
def test_a_workload_imitating_the_launcher_is_not_adopted_as_one(
    manager_factory: ManagerFactory, tmp_path: Path, kind: str
) -> None:
    manager = manager_factory(pool_scale=0.5, launcher=kind)
    assert manager.launcher_kind == kind
    assert manager.wait_pools(timeout=120)
    # The imitations: the launcher itself, bare and with a guessed token (it waits on /.fe/go).
    mimics = {"bare": [LAUNCHER_ARG], "guess": [LAUNCHER_ARG, "0" * 32]}
    pids = {}
    for name, command in mimics.items():
        view = manager.create_instance(InstanceRequest(name=name, template="idle", command=command))
        assert view.pid is not None
        pids[name] = view.pid
    assert manager.wait_pools(timeout=120)  # refilled: the pool below is what stop() leaves
    launcher = manager.runc_io().launcher_path
    for name, pid in pids.items():
        # what the old command-line check saw: the launcher's argv
        assert wait_until(lambda pid=pid: LAUNCHER_ARG in _argv(pid), timeout=10)
        token = manager.instances[name].token
        assert token is not None
        assert not launcher_waiting(pid, token, file_id(launcher))
    pooled = {s.id: s for p in manager.pools.values() for s in p.ready}
    assert pooled
    for shell in pooled.values():
        # "ready" means created and started: the container's init may still be in its exec
        # of the launcher (an empty command line), so wait for the launcher's argv
        assert wait_until(
            lambda shell=shell: _argv(shell.pid)[-2:] == [LAUNCHER_ARG, shell.token], timeout=10
        ), _argv(shell.pid)
        assert launcher_waiting(shell.pid, shell.token, file_id(launcher))
        # another shell's token does not identify this one
        assert not launcher_waiting(shell.pid, "f" * 32, file_id(launcher))
    manager.stop()
    again = Manager(manager.config, Store(tmp_path / "db0.sqlite"), manager.state_dir)
    again.start()
    try:
        for name, pid in pids.items():
            view = again.get_instance(name).view()
            assert (view.state, view.pid) == ("running", pid)
            assert procfs.process_running(pid)
        assert {s.id for p in again.pools.values() for s in p.ready} == set(pooled)
        assert not again.orphans
        # a re-adopted shell still serves a request (its launcher got the go signal)
        taken = again.create_instance(InstanceRequest(name="after", template="idle"))
        assert taken.path == "warm"
        assert taken.id in pooled
        assert wait_until(lambda: LAUNCHER_ARG not in _argv(taken.pid or 0), timeout=10)
    finally:
        again.purge()
