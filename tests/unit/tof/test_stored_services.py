"""The TOF catalog's rows read back at start (fluidedge.tof.catalog._stored_service).

A real store; rows written as an older release or a hand edit would leave them. What the
decode refuses is set aside by :mod:`fluidedge.core.rows`, never served.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fixtures.rows import set_aside

from fluidedge.core.store import Store
from fluidedge.tof.catalog import ServiceCatalog


def _catalog(tmp_path: Path, stored: list[tuple[str, str, str]]) -> ServiceCatalog:
    store = Store(tmp_path / "db.sqlite")
    ServiceCatalog(store, lambda _services: None)  # the table
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO tof_service (name, service_ip, application_ip) VALUES (?, ?, ?)",
            stored,
        )
    return ServiceCatalog(store, lambda _services: None)


def test_addresses_are_read_back_in_canonical_form(tmp_path: Path) -> None:
    catalog = _catalog(
        tmp_path, [("a", "198.18.0.1", "10.0.0.1"), ("b", "2001:DB8:0::1", "2001:db8::0:2")]
    )
    got = {s.name: (s.service_ip, s.application_ip) for s in catalog.all()}
    assert got == {"a": ("198.18.0.1", "10.0.0.1"), "b": ("2001:db8::1", "2001:db8::2")}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (("bad", "198.18.0.01", "10.0.0.1"), "is not an IP address"),  # a leading zero
        (("bad", "198.18.0.2", "fe80::1%eth0"), "is not an IP address"),  # a zone
        (("bad", "198.18.0.2", "2001:db8::2"), "not of the same IP version"),
        (("bad name", "198.18.0.2", "10.0.0.2"), "is not a service name"),
    ],
)
def test_a_row_the_api_would_refuse_is_set_aside(
    tmp_path: Path, row: tuple[str, str, str], reason: str
) -> None:
    catalog = _catalog(tmp_path, [("good", "198.18.0.1", "10.0.0.1"), row])
    assert [s.name for s in catalog.all()] == ["good"]
    (aside,) = set_aside(tmp_path / "db.sqlite")
    assert (aside.source, aside.key) == ("tof_service", row[0])
    assert reason in aside.reason
