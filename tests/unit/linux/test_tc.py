"""linux.tc: the tc commands behind attaching, listing and removing eBPF programs (argv only;
tests/functional/tof_fastpath runs them against real devices)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from fluidedge.linux import tc
from fluidedge.linux.proc import CommandError


class FakeTc:
    """Records the commands ``tc`` would run; ``filters`` is what ``filter show`` prints."""

    def __init__(self, filters: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[list[str], bool]] = []
        self.filters = filters or {}

    def __call__(
        self, argv: Sequence[str], *, check: bool = True, **_: object
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append((list(argv), check))
        tail = list(argv)[list(argv).index("tc") + 1 :] if "tc" in argv else []
        out = self.filters.get(tail[-1], "") if tail[:2] == ["filter", "show"] else ""
        return subprocess.CompletedProcess(list(argv), 0, out, "")

    def argvs(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTc:
    runner = FakeTc()
    monkeypatch.setattr(tc, "run", runner)
    return runner


def test_attach_pins_replaces_qdisc_and_filter_then_unpins(
    fake: FakeTc, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pinned: list[Path] = []

    def pin(fd: int, path: Path) -> None:
        assert fd == 7
        path.write_bytes(b"")  # stands for the bpffs entry
        pinned.append(path)

    monkeypatch.setattr(tc, "BPFFS", tmp_path)
    monkeypatch.setattr(tc.os.path, "ismount", lambda _p: True)
    monkeypatch.setattr(tc, "pin", pin)
    tc.attach_bpf("ns1", "eth0", "ingress", 7, pref="3", handle="2")

    [path] = pinned
    assert path.parent.parent == tmp_path
    assert path.name == "eth0-ingress"
    assert fake.argvs() == [
        ["ip", "netns", "exec", "ns1", "tc", "qdisc", "replace", "dev", "eth0", "clsact"],
        [
            "ip", "netns", "exec", "ns1", "tc", "filter", "replace", "dev", "eth0", "ingress",
            "pref", "3", "handle", "2", "bpf", "object-pinned", str(path), "da",
        ],
    ]  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # unpinned, temporary directory gone


def test_show_filters_raises_without_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(argv: Sequence[str], *, check: bool = True, **_: object) -> None:
        assert check
        raise CommandError(argv, 1, 'Cannot find device "nosuch0"')

    monkeypatch.setattr(tc, "run", failing)
    with pytest.raises(CommandError, match="nosuch0"):
        tc.show_filters(None, "nosuch0", "ingress")


def test_delete_filter_tolerates_a_filter_already_gone(fake: FakeTc) -> None:
    tc.delete_filter(None, "eth0", "egress", pref="1", handle="1")
    assert fake.calls == [
        (["tc", "filter", "del", "dev", "eth0", "egress", "pref", "1", "handle", "1", "bpf"], False)
    ]


@pytest.mark.parametrize(
    ("filters", "dropped"),
    [
        ({}, True),
        ({"ingress": "filter protocol all pref 5 bpf chain 0 \n"}, False),
        ({"egress": "filter protocol all pref 5 bpf chain 0 \n"}, False),
        ({"ingress": "  \n", "egress": "\n"}, True),
    ],
)
def test_clsact_is_dropped_only_when_no_filter_is_left(
    fake: FakeTc, filters: dict[str, str], dropped: bool
) -> None:
    fake.filters = filters
    tc.drop_clsact_if_unused(None, "eth0")
    deletes = [argv for argv in fake.argvs() if argv[1:3] == ["qdisc", "del"]]
    assert deletes == ([["tc", "qdisc", "del", "dev", "eth0", "clsact"]] if dropped else [])
    assert all(not check for _, check in fake.calls)
