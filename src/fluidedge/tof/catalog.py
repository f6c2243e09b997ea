"""The declared services: conflict rules, persistence, and apply-before-commit (Figure 17).

Every mutation computes the complete new service set, hands it to the data plane (``apply``) and
only then commits it to SQLite and to memory, inside one store transaction: if the data plane
refuses, the transaction rolls back and the previous set stays in force everywhere; if the
commit fails after the data plane accepted, the previous set is re-applied. Mutations are
serialised by a lock, so concurrent requests see each other's effects in some order and all
persist.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import sqlite3
import threading
from collections.abc import Callable, Mapping

from fluidedge.core import rows
from fluidedge.core.store import Store
from fluidedge.tof.errors import ServiceConflict, ServiceNotFound
from fluidedge.tof.models import NAME_PATTERN, Match, Service
from fluidedge.tof.superfluid.model import OnDemand

MIGRATIONS = [
    """
    CREATE TABLE tof_service (
        name TEXT PRIMARY KEY,
        service_ip TEXT NOT NULL UNIQUE,
        application_ip TEXT NOT NULL
    )
    """,
    # On-demand services (docs/superfluid.md): the onDemand spec as JSON, NULL for a fixed
    # application IP (which is then "" for an on-demand one).
    "ALTER TABLE tof_service ADD COLUMN ondemand TEXT",
    # Classified services (docs/tof.md): the match as JSON (NULL: a plain service) and the
    # action. Several classified services may share a service IP, so the column is no longer
    # UNIQUE (the catalog checks the rule): the table is rebuilt without the constraint.
    """
    CREATE TABLE tof_service_new (
        name TEXT PRIMARY KEY,
        service_ip TEXT NOT NULL,
        application_ip TEXT NOT NULL,
        ondemand TEXT,
        classify TEXT,
        action TEXT NOT NULL DEFAULT 'offload'
    );
    INSERT INTO tof_service_new (name, service_ip, application_ip, ondemand)
        SELECT name, service_ip, application_ip, ondemand FROM tof_service;
    DROP TABLE tof_service;
    ALTER TABLE tof_service_new RENAME TO tof_service;
    CREATE INDEX tof_service_ip ON tof_service (service_ip)
    """,
]

_NAME = re.compile(NAME_PATTERN)


def _address(value: object) -> tuple[int, str]:
    """A stored address's family and canonical text (``inet_pton``: a C parse, a start
    reads one or two per service; ``ipaddress`` cost four times the whole read at 10,000)."""
    if not isinstance(value, str):
        raise TypeError(f"address {value!r} is not text")
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, value)
        except OSError:
            continue
        return family, socket.inet_ntop(family, packed)
    raise ValueError(f"{value!r} is not an IP address")


def _stored_service(row: sqlite3.Row) -> Service:
    """A stored row as the service it declares: its name and addresses checked (a row that
    fails is set aside: :mod:`fluidedge.core.rows`)."""
    name, ondemand, classify = row["name"], row["ondemand"], row["classify"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name {name!r} is not a service name")
    service_family, service_ip = _address(row["service_ip"])
    application_family, application_ip = _address(row["application_ip"])
    if not ondemand and service_family != application_family:
        raise ValueError("serviceIP and applicationIP are not of the same IP version")
    return Service(
        name,
        service_ip,
        application_ip,
        OnDemand.from_json(ondemand) if ondemand else None,
        Match.from_api(json.loads(classify)) if classify else None,
        row["action"],
    )


ApplyFn = Callable[[Mapping[str, Service]], None]
CheckFn = Callable[[Service], None]

_INSERT = (
    "INSERT INTO tof_service (name, service_ip, application_ip, ondemand, classify, action) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def _row(service: Service) -> tuple[str, str, str, str | None, str | None, str]:
    ondemand = service.ondemand.to_json() if service.ondemand is not None else None
    match = json.dumps(service.match.to_api()) if service.match is not None else None
    return (
        service.name, service.service_ip, service.application_ip, ondemand, match, service.action
    )  # fmt: skip


def _canonical(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


class ServiceCatalog:
    """Services by name, backed by the store, mirrored to the data plane."""

    def __init__(self, store: Store, apply: ApplyFn) -> None:
        self._store = store
        self._apply = apply
        self._lock = threading.Lock()
        #: Called with every added or updated service before anything changes; raises an
        #: InputError to refuse it (the superfluid controller checks on-demand services).
        self.check: CheckFn | None = None
        store.migrate("tof", MIGRATIONS)
        self._services: dict[str, Service] = {
            service.name: service
            for service in rows.load(
                store,
                "tof_service",
                ("name", "service_ip", "application_ip", "ondemand", "classify", "action"),
                _stored_service,
            )
        }

    def snapshot(self) -> dict[str, Service]:
        return dict(self._services)

    def all(self) -> list[Service]:
        return sorted(self._services.values(), key=lambda s: s.name)

    def find(self, name_or_ip: str) -> Service:
        """The service named ``name_or_ip``, else the one whose serviceIP it is.

        A service IP shared by several classified services names none of them: that is a
        ServiceConflict (409) listing their names, so a caller (``DELETE /service/{ip}``,
        ``GET /service/{ip}/instances``) never acts on an arbitrary one; use the names.
        """
        services = self._services
        found = services.get(name_or_ip)
        if found is not None:
            return found
        ip = _canonical(name_or_ip)
        names = sorted(n for n, s in services.items() if ip is not None and s.service_ip == ip)
        if len(names) == 1:
            return services[names[0]]
        if names:
            raise ServiceConflict(
                f"serviceIP {ip} is shared by {len(names)} classified services "
                f"({', '.join(repr(n) for n in names)}): name the service"
            )
        raise ServiceNotFound(f"no service named or with serviceIP {name_or_ip!r}")

    def restore(self) -> None:
        """Push the stored set to the data plane (daemon start)."""
        with self._lock:
            self._apply(dict(self._services))

    def add(self, service: Service) -> Service:
        with self._lock:
            current = self._services
            if service.name in current:
                raise ServiceConflict(f"a service named {service.name!r} already exists")
            self._check_ip_free(service, ignore=None)
            if self.check is not None:
                self.check(service)
            new = {**current, service.name: service}
            self._commit(
                new,
                [(_INSERT, _row(service))],
            )
            return service

    def update(self, name: str, service: Service) -> Service:
        with self._lock:
            current = self._services
            if name not in current:
                raise ServiceNotFound(f"no service named {name!r}")
            if service.name != name and service.name in current:
                raise ServiceConflict(f"a service named {service.name!r} already exists")
            self._check_ip_free(service, ignore=name)
            if self.check is not None:
                self.check(service)
            new = {k: v for k, v in current.items() if k != name}
            new[service.name] = service
            self._commit(
                new,
                [
                    ("DELETE FROM tof_service WHERE name = ?", (name,)),
                    (_INSERT, _row(service)),
                ],
            )
            return service

    def delete(self, name_or_ip: str) -> Service:
        with self._lock:
            service = self.find(name_or_ip)
            new = {k: v for k, v in self._services.items() if k != service.name}
            self._commit(new, [("DELETE FROM tof_service WHERE name = ?", (service.name,))])
            return service

    def _check_ip_free(self, service: Service, ignore: str | None) -> None:
        """A plain service owns its service IP; classified services may share one."""
        for other in self._services.values():
            if other.name != ignore and other.service_ip == service.service_ip:
                if service.classified and other.classified:
                    continue
                raise ServiceConflict(
                    f"serviceIP {service.service_ip} is already used by service {other.name!r}"
                )

    def _commit(
        self, new: dict[str, Service], statements: list[tuple[str, tuple[str | None, ...]]]
    ) -> None:
        old = self._services
        applied = False
        try:
            with self._store.transaction() as conn:
                for sql, params in statements:
                    conn.execute(sql, params)
                self._apply(new)
                applied = True
        except BaseException:
            if applied:
                self._apply(old)
            raise
        self._services = new
