"""A tunnel listing never holds the data plane's lock across the bearer table.

``GET /tunnels`` (whole or a keyset page) and the web GUI's searched pages ran under one hold
of the lock the data plane forwards under: at 100,000 bearers a page's marker comparisons held
it for tens of milliseconds, a whole listing's rows for seconds, and no packet moved meanwhile
(``bench/tof_tunnel_listing.py`` measures the holds). Now the table is copied in one short
hold, the page chosen outside the lock, and the rows built ``ROWS_CHUNK`` per hold. Both
backends share it (``DataPlaneBase``); the fast path's also folds each page row's kernel
counters in its hold (``tests/unit/tof_fastpath/test_fold.py``).
"""

from __future__ import annotations

import ipaddress
import threading
from types import TracebackType

import pytest
from tests.unit.tof.test_tunnel_keyset import _learn

from fluidedge.tof import dataplane_common
from fluidedge.tof.config import TofConfig
from fluidedge.tof.dataplane_common import ROWS_CHUNK
from fluidedge.tof.pipeline import Bearer
from fluidedge.tof.userspace import UserspaceBackend


class CountingLock:
    """The data plane's lock, counting the rows built in each hold."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows = 0
        self.holds: list[int] = []

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> None:
        self._lock.acquire()
        self.rows = 0

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.holds.append(self.rows)
        self._lock.release()


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> tuple[UserspaceBackend, CountingLock]:
    backend = UserspaceBackend(TofConfig())
    _learn(backend.pipeline, 2 * ROWS_CHUNK + 10)
    lock = CountingLock()
    backend._lock = lock  # type: ignore[assignment]
    to_api = Bearer.to_api

    def counted(bearer: Bearer) -> dict[str, object]:
        assert lock.locked(), "a row built outside the lock"
        lock.rows += 1
        return to_api(bearer)

    monkeypatch.setattr(Bearer, "to_api", counted)
    return backend, lock


def test_a_whole_listing_builds_its_rows_a_chunk_per_hold(
    backend: tuple[UserspaceBackend, CountingLock],
) -> None:
    user, lock = backend
    rows = user.tunnels()
    assert len(rows) == 2 * ROWS_CHUNK + 10
    assert max(lock.holds) == ROWS_CHUNK
    assert sum(lock.holds) == len(rows)


def test_a_keyset_page_is_chosen_outside_the_lock(
    backend: tuple[UserspaceBackend, CountingLock], monkeypatch: pytest.MonkeyPatch
) -> None:
    user, lock = backend
    choose = dataplane_common.keyset_bearers
    held: list[bool] = []

    def chosen(*args: object) -> tuple[list[Bearer], str | None]:
        held.append(lock.locked())
        return choose(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(dataplane_common, "keyset_bearers", chosen)
    rows, marker = user.tunnels_after(None, 50)
    assert held == [False]
    assert len(rows) == 50
    assert marker is not None
    assert lock.holds == [0, 50]  # the copy of the table, then the page's rows


def test_a_search_runs_outside_the_lock(backend: tuple[UserspaceBackend, CountingLock]) -> None:
    user, lock = backend
    held: list[bool] = []

    def keep(bearer: Bearer) -> bool:
        held.append(lock.locked())
        return bearer.ue[3] % 2 == 0

    total, rows = user.tunnel_page(keep, 10, 20)
    assert len(held) == 2 * ROWS_CHUNK + 10
    assert not any(held)
    assert total == sum(1 for b in user.pipeline.bearers.values() if b.ue[3] % 2 == 0)
    assert len(rows) == 20


def test_a_bearer_retired_after_the_copy_is_not_listed(
    backend: tuple[UserspaceBackend, CountingLock],
) -> None:
    """The page is chosen from the copy; a bearer gone (or replaced by a new one with the same
    key) by the time its row would be built is left out, never shown stale."""
    user, _ = backend
    keys = list(user.pipeline.bearers)

    def retire(bearer: Bearer) -> bool:
        user.pipeline.bearers.pop(keys[0], None)  # what the data plane does meanwhile
        return True

    total, rows = user.tunnel_page(retire, 0, 5)
    assert total == 2 * ROWS_CHUNK + 10  # matched in the copy
    assert len(rows) == 4  # its row: not built
    assert str(ipaddress.ip_address(keys[0][2])) not in {r["ue"] for r in rows}
