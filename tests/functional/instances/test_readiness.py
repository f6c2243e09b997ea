"""Readiness on real containers: the launcher reports its exec through the started FIFO (a
failed exec is a 422 with the reason), ``file`` waits for the workload's file, and a request
that does not wait never blocks the launcher."""

from __future__ import annotations

import os

import pytest

from fluidedge.instances.errors import WorkloadFailed
from fluidedge.instances.models import InstanceRequest, TemplateSpec
from tests.fixtures.wait import wait_for

from .conftest import ManagerFactory

pytestmark = pytest.mark.root


def _cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return [a.decode() for a in handle.read().split(b"\0") if a]


def _fds_of(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return out


@pytest.mark.parametrize("kind", ["c", "sh"])
def test_started_means_the_workload_runs(manager_factory: ManagerFactory, kind: str) -> None:
    manager = manager_factory(launcher=kind)
    assert manager.wait_pools(60)
    view = manager.create_instance(
        InstanceRequest(name="w", template="idle", command=["/bin/busybox", "sleep", "997"])
    )
    assert view.pid is not None
    want = ["/bin/busybox", "sleep", "997"]
    if kind == "c":  # returned once the exec closed the started FIFO: it is the workload
        assert _cmdline(view.pid) == want
    else:  # the busybox script reports just before ``env -i`` execs the workload
        pid = view.pid
        wait_for(lambda: _cmdline(pid) == want, 20, lambda: f"the workload: {_cmdline(pid)}", 0.01)
    assert not any(path.endswith("/started") for path in _fds_of(view.pid))


def test_failed_exec_is_a_422_with_the_reason(manager_factory: ManagerFactory) -> None:
    manager = manager_factory(launcher="c")
    with pytest.raises(WorkloadFailed, match="execve failed: No such file or directory"):
        manager.create_instance(
            InstanceRequest(name="gone", template="idle", command=["/no/such/program"])
        )
    with pytest.raises(WorkloadFailed, match="execve failed: Permission denied"):
        manager.create_instance(InstanceRequest(name="noexec", template="idle", command=["/etc"]))
    assert manager.instances == {}


def test_file_readiness_waits_for_the_workloads_file(manager_factory: ManagerFactory) -> None:
    manager = manager_factory(pool_scale=0)
    manager.create_template(
        TemplateSpec.model_validate(
            {
                "name": "slowfile",
                "command": [
                    "/bin/busybox",
                    "sh",
                    "-c",
                    "sleep 0.3; echo up > /tmp/ready; exec sleep 999",
                ],
                "readiness": {"kind": "file", "path": "/tmp/ready", "timeout_s": 30},
            }
        )
    )
    view = manager.create_instance(InstanceRequest(name="f", template="slowfile"))
    assert view.pid is not None
    with open(f"/proc/{view.pid}/root/tmp/ready") as handle:
        assert handle.read() == "up\n"  # the workload's own 0.3 s sleep was waited for


def test_file_readiness_fails_when_the_workload_exits_first(
    manager_factory: ManagerFactory,
) -> None:
    manager = manager_factory(pool_scale=0)
    manager.create_template(
        TemplateSpec.model_validate(
            {
                "name": "quitter",
                "command": ["/bin/busybox", "sh", "-c", "exit 3"],
                "readiness": {"kind": "file", "path": "/tmp/never", "timeout_s": 30},
            }
        )
    )
    with pytest.raises(WorkloadFailed, match="exited"):
        manager.create_instance(InstanceRequest(name="q", template="quitter"))
    assert "q" not in manager.instances


@pytest.mark.parametrize("kind", ["c", "sh"])
def test_not_waiting_never_blocks_the_launcher(manager_factory: ManagerFactory, kind: str) -> None:
    manager = manager_factory(launcher=kind)
    assert manager.wait_pools(60)
    view = manager.create_instance(
        InstanceRequest(
            name="nw",
            template="idle",
            command=["/bin/busybox", "sleep", "996"],
            wait_ready=False,
        )
    )
    assert view.pid is not None
    pid = view.pid
    wait_for(lambda: "996" in _cmdline(pid), 20, lambda: f"the workload, not {_cmdline(pid)}", 0.01)
