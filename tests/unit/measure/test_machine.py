"""Machine description and per-instance memory, on fake /proc and cgroup trees."""

from __future__ import annotations

from pathlib import Path

from fluidedge.measure import machine


def test_cpu_model_and_meminfo() -> None:
    assert machine.cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert machine.cpu_model("nothing here") is None
    text = "MemTotal:       24684544 kB\nMemAvailable:   20000000 kB\n"
    assert machine.meminfo_kib(text, "MemAvailable") == 20000000
    assert machine.meminfo_kib(text, "SwapTotal") is None


def test_memory_cgroup_v1_and_v2(tmp_path: Path) -> None:
    proc, cgroups = tmp_path / "proc", tmp_path / "cg"
    (proc / "10").mkdir(parents=True)
    (proc / "10" / "cgroup").write_text("5:devices:/fe/a\n4:memory:/fluidedge/fe1\n0::/fe/a\n")
    (cgroups / "memory" / "fluidedge" / "fe1").mkdir(parents=True)
    (cgroups / "memory" / "fluidedge" / "fe1" / "memory.usage_in_bytes").write_text("293888\n")
    assert machine.memory_cgroup_bytes(10, str(proc), str(cgroups)) == 293888

    (proc / "11").mkdir()
    (proc / "11" / "cgroup").write_text("0::/apps/x\n")
    (cgroups / "apps" / "x").mkdir(parents=True)
    (cgroups / "apps" / "x" / "memory.current").write_text("4096\n")
    assert machine.memory_cgroup_bytes(11, str(proc), str(cgroups)) == 4096
    assert machine.memory_cgroup_bytes(12, str(proc), str(cgroups)) is None


def test_describe_has_what_a_report_needs() -> None:
    described = machine.describe(include_tools=False)
    for key in ("cpu_model", "cpus", "kernel", "memory_mib", "python", "fluidedge"):
        assert key in described
    assert described["cpus"] >= 1
