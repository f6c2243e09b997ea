"""``runc list`` raced by a concurrent delete is asked again (the command itself is run for
real by every functional test that lists containers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluidedge.instances import runc
from fluidedge.instances.errors import RuntimeFailure

RACE = (
    'runc list --format json failed: level=error msg="stat /state/runc/fe12: '
    'no such file or directory"'
)


class Scripted(runc.Runc):
    """A runtime whose ``_run`` answers from a script (errors raised, text returned)."""

    def __init__(self, root: Path, answers: list[str | RuntimeFailure]) -> None:
        super().__init__(root, cgroup=object())  # type: ignore[arg-type]
        self.answers = answers
        self.calls = 0

    def _run(self, *args: str, timeout: float = 30.0) -> str:
        del args, timeout
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, RuntimeFailure):
            raise answer
        return answer


def test_a_container_deleted_while_listing_is_listed_again(tmp_path: Path) -> None:
    rt = Scripted(tmp_path, [RuntimeFailure(RACE), RuntimeFailure(RACE), '[{"id": "fe34"}]'])
    assert rt.list() == [{"id": "fe34"}]
    assert rt.calls == 3


def test_other_failures_and_a_race_that_does_not_end_are_errors(tmp_path: Path) -> None:
    other = Scripted(tmp_path, [RuntimeFailure("runc list: permission denied")])
    with pytest.raises(RuntimeFailure, match="permission denied"):
        other.list()
    assert other.calls == 1
    endless = Scripted(tmp_path, [RuntimeFailure(RACE)] * runc.LIST_ATTEMPTS)
    with pytest.raises(RuntimeFailure, match="no such file"):
        endless.list()
    assert endless.calls == runc.LIST_ATTEMPTS
    assert Scripted(tmp_path, ["null"]).list() == []
