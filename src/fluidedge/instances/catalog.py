"""Templates and networks: what instances may be made of, kept in memory and in the store.

The catalog checks the references between them (a template's interfaces name networks; a
network used by a template, or a template used by an instance, cannot be deleted) and owns the
bridges it created (``managed``). Pools and instances are the manager's: it passes who uses a
template when deleting one, and creates or drops the template's pool around these calls.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable
from typing import Any

from fluidedge.errors import FluidedgeError
from fluidedge.instances import network
from fluidedge.instances.builtin import builtin_templates
from fluidedge.instances.errors import (
    InUse,
    InvalidRequest,
    NameInUse,
    NetworkNotFound,
    TemplateNotFound,
)
from fluidedge.instances.models import NetworkSpec, TemplateSpec, check_file_tree
from fluidedge.instances.persist import Tables

log = logging.getLogger("fluidedge.instances")


class Catalog:
    """The templates and networks of one manager."""

    def __init__(self, tables: Tables, lock: threading.RLock) -> None:
        self.tables = tables
        self._lock = lock
        self.templates: dict[str, TemplateSpec] = {}
        self.builtin: set[str] = set()
        self.networks: dict[str, NetworkSpec] = {}
        self.managed_networks: set[str] = set()
        # declared networks whose switch could not be made: name -> why (see _ensure)
        self.unavailable: dict[str, str] = {}

    def load(self, configured: dict[str, dict[str, Any]], with_builtin: bool) -> None:
        """Read the store, add the configured networks and the built-in templates, and make
        sure every network's bridge exists."""
        for spec, managed in self.tables.stored_networks(
            lambda doc, flag: (NetworkSpec.model_validate(doc), flag)
        ):
            self.networks[spec.name] = spec
            if managed:
                self.managed_networks.add(spec.name)
        for name, raw in configured.items():
            spec = NetworkSpec.model_validate({"name": name, **raw})
            if spec.name not in self.networks:
                self.create_network(spec)
            else:
                self.networks[spec.name] = spec
        for spec in self.networks.values():
            self._ensure(spec)
        for template, is_builtin in self.tables.stored_templates(
            lambda doc, flag: (TemplateSpec.model_validate(doc), flag)
        ):
            self.templates[template.name] = template
            if is_builtin:
                self.builtin.add(template.name)
        if with_builtin:
            for template in builtin_templates():
                if template.name not in self.templates:
                    self.templates[template.name] = template
                    self.builtin.add(template.name)
                    self.tables.put_template(template.name, template.model_dump(), True)

    def _ensure(self, spec: NetworkSpec) -> bool:
        """Make a declared network's switch (at start, and again while it is unavailable).

        A switch that cannot be made leaves the network declared but *unavailable*
        (:attr:`unavailable`, ``GET /v1/stats``), said once: its namespace is gone (a reboot
        takes every namespace the operator made; ``ip netns del``), its bridge's name is now
        another kind of interface, the node lost its OVN config. The start goes on for
        everything else (it used to be refused, taking every service down), and the part's
        check makes the switch once it can (:meth:`retry_unavailable`). True if it is made.
        """
        try:
            if network.ensure_bridge(spec):
                self.managed_networks.add(spec.name)
        except FluidedgeError as exc:  # ours, and OVN's (the node has none any more)
            if self.unavailable.get(spec.name) != str(exc):
                log.error(
                    "instances: network %s is unavailable (%s): kept; its switch is made once "
                    "it can be",
                    spec.name,
                    exc,
                    extra={"part": "instances", "event": "network_unavailable", "ids": spec.name},
                )
            self.unavailable[spec.name] = str(exc)
            return False
        if self.unavailable.pop(spec.name, None) is not None:
            log.warning(
                "instances: network %s is available again (its switch is made)",
                spec.name,
                extra={"part": "instances", "event": "network_available", "ids": spec.name},
            )
        return True

    def retry_unavailable(self) -> list[str]:
        """The unavailable networks whose switch could be made now (the part's check, every
        ``switch_check_interval_s``; nothing to do in the common case)."""
        if not self.unavailable:
            return []
        with self._lock:
            specs = [self.networks[n] for n in list(self.unavailable) if n in self.networks]
        return [spec.name for spec in specs if self._ensure(spec)]

    # ------------------------------------------------------------------ templates
    def add_builtin(self, spec: TemplateSpec) -> bool:
        """Make ``spec`` a built-in template (every tenant may use it) unless a template of
        that name exists; stored like the product's own. Whether it was added."""
        with self._lock:
            if spec.name in self.templates:
                return False
            self.tables.put_template(spec.name, spec.model_dump(), True)
            self.templates[spec.name] = spec
            self.builtin.add(spec.name)
        return True

    def create_template(self, spec: TemplateSpec) -> TemplateSpec:
        with self._lock:
            if spec.name in self.templates:
                raise NameInUse(f"template {spec.name!r} already exists")
            for iface in spec.interfaces:
                if iface.network not in self.networks:
                    raise NetworkNotFound(
                        f"interfaces.{iface.name}: network {iface.network!r} does not exist"
                    )
                driver = self.networks[iface.network].driver
                if iface.isolated and driver not in ("ovs", "linuxbridge"):
                    raise InvalidRequest(
                        f"interfaces.{iface.name}: isolated needs an ovs or linuxbridge "
                        f"network ({iface.network!r} is {driver})"
                    )
            duplicates = spec.duplicate_interfaces()
            if duplicates:
                raise InvalidRequest(
                    f"interfaces: names must be unique ({', '.join(duplicates)} repeated)"
                )
            try:
                check_file_tree(spec.files)
            except ValueError as exc:
                raise InvalidRequest(f"files: {exc}") from exc
            self.tables.put_template(spec.name, spec.model_dump(), False)
            self.templates[spec.name] = spec
        return spec

    def get_template(self, name: str) -> TemplateSpec:
        template = self.templates.get(name)
        if template is None:
            raise TemplateNotFound(f"template {name!r} does not exist")
        return template

    def delete_template(self, name: str, users: Iterable[str]) -> None:
        """Forget template ``name`` unless ``users`` (instances made of it) is non-empty."""
        with self._lock:
            self.get_template(name)
            using = list(users)
            if using:
                raise InUse(f"template {name} is used by instance(s): {', '.join(using[:10])}")
            del self.templates[name]
            self.builtin.discard(name)
            self.tables.delete_template(name)

    # ------------------------------------------------------------------ networks
    def create_network(self, spec: NetworkSpec) -> NetworkSpec:
        with self._lock:
            if spec.name in self.networks:
                raise NameInUse(f"network {spec.name!r} already exists")
            for other in self.networks.values():
                if other.bridge == spec.bridge and other.netns == spec.netns:
                    raise NameInUse(f"bridge {spec.bridge} is already network {other.name}")
            managed = network.ensure_bridge(spec)
            self.networks[spec.name] = spec
            if managed:
                self.managed_networks.add(spec.name)
            self.tables.put_network(spec.name, spec.model_dump(), managed)
        return spec

    def get_network(self, name: str) -> NetworkSpec:
        spec = self.networks.get(name)
        if spec is None:
            raise NetworkNotFound(f"network {name!r} does not exist")
        return spec

    def delete_network(self, name: str) -> None:
        with self._lock:
            spec = self.get_network(name)
            users = sorted(
                t.name
                for t in self.templates.values()
                if any(i.network == name for i in t.interfaces)
            )
            if users:
                raise InUse(f"network {name} is used by template(s): {', '.join(users)}")
            routers = network.routers_on(spec)
            if routers:
                raise InUse(f"network {name} is joined by router(s): {', '.join(routers)}")
            if name in self.managed_networks:
                network.delete_bridge(spec)
                self.managed_networks.discard(name)
            del self.networks[name]
            self.unavailable.pop(name, None)
            self.tables.delete_network(name)

    def delete_managed_bridges(self) -> None:
        """Remove the bridges this catalog created (purge)."""
        for name in list(self.managed_networks):
            with contextlib.suppress(Exception):
                network.delete_bridge(self.networks[name])
