"""The firewall driver: the seed's API (§6.1.1.1) over the compiler and a renderer.

``prepare_port_filter`` / ``update_port_filter`` / ``remove_port_filter`` take ports,
``update_security_group_rules`` / ``update_security_group_members`` take groups, and
``defer_apply`` batches any number of calls into one apply (one ``nft -f`` transaction per
network touched). Outside ``defer_apply`` every call applies at once.

One deliberate difference from the seed's driver: there, a rule change reaches a port only at
the port's next ``update_port_filter`` (the RPC layer decides which ports to update). Here the
driver keeps the whole model and recompiles every network a change can affect, so a caller
cannot forget a port; ``update_port_filter`` is still the call that changes a port.

After each apply, the connections that the new program no longer admits are deleted from the
network's conntrack zone (neutron does the same): their next packet is a new, non-SYN one and
is dropped. Connections the program still admits are never touched, so unrelated changes do not
disturb them.

The renderer is behind the :class:`Renderer` protocol: :class:`NftRenderer` here, the OpenFlow
renderer of the ``ovs`` network driver alongside it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from fluidedge.secgroups.compiler import Compiler, FilterProgram
from fluidedge.secgroups.conntrack import Conntrack
from fluidedge.secgroups.errors import FilterFailure, GroupNotFound
from fluidedge.secgroups.model import Port, Rule, SecurityGroup
from fluidedge.secgroups.nft import (
    MAX_TAG,
    Binding,
    Nft,
    Table,
    build_tables,
    render_diff,
    render_full,
    render_removal,
)
from fluidedge.secgroups.nftcheck import (
    Shape,
    changes,
    digests_of,
    parse_listing,
    shape_of,
    shapes_of,
    summary,
)
from fluidedge.secgroups.verdict import admits_new, owner_of

log = logging.getLogger(__name__)


def narrowed(old: FilterProgram, new: FilterProgram, network: str) -> bool:
    """Whether ``new`` may refuse a connection ``old`` admitted on ``network`` (a clause or a
    set member went, or a port's filtering came on): only then are live connections checked,
    so widening changes (the common case: a rule or a member added) cost no conntrack walk."""
    old_sets = {s.name: s for s in old.address_sets if s.network == network}
    new_sets = {s.name: s for s in new.address_sets if s.network == network}
    shrunk = {
        name
        for name, was in old_sets.items()
        if new_sets.get(name) is not was
        and not set(was.members) <= set(getattr(new_sets.get(name), "members", ()))
    }
    after_ports = {p.port: p for p in new.ports}
    for before in old.ports:
        if before.network != network:
            continue
        after = after_ports.get(before.port)
        if after is None:
            continue  # the port is gone, and its connections with it
        if after is before and not (shrunk & before.set_names()):
            continue  # the same filter (the incremental compiler keeps it) and sets
        if not after.port_security:
            continue
        if not before.port_security:
            return True
        for direction in ("ingress", "egress"):
            kept = {c.key() for c in after.clauses(direction)}
            for clause in before.clauses(direction):
                if clause.key() not in kept:
                    return True
                if clause.remote_set is not None and clause.remote_set in shrunk:
                    return True
    return False


# What a network whose rules a check found changed from outside went through meanwhile (the
# end of every such reason a renderer's check gives, logged by FirewallDriver.heal)
NOT_AS_DECLARED = "its ports were not filtered as declared"


class Applies:
    """Per key (a network, a bridge), a count that is odd while an apply of ours is under
    way: a renderer's check, which runs without the driver's lock, judges a key only when its
    count is even and did not move while the check read the kernel (:meth:`settled`)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    @contextlib.contextmanager
    def under_way(self, key: str) -> Iterator[None]:
        self._counts[key] = self._counts.get(key, 0) + 1
        try:
            yield
        finally:
            self._counts[key] += 1

    def seen(self, key: str) -> int:
        return self._counts.get(key, 0)

    def settled(self, key: str, before: int) -> bool:
        now = self.seen(key)
        return now == before and now % 2 == 0


class Renderer(Protocol):
    """Installs one network's part of a program (atomically) and removes it."""

    def apply_network(self, program: FilterProgram, binding: Binding) -> bool:
        """Install; return False if nothing had to change."""

    def remove_network(self, binding: Binding) -> None: ...

    def zone_netns(self, binding: Binding) -> str | None:
        """The namespace whose conntrack holds the network's zone."""

    def forget_device(self, device: str) -> None:
        """``device`` was plugged (again): what the renderer knows of it by number (an
        OpenFlow port) is asked anew at the next apply; nothing for renderers that name
        devices."""


@dataclass
class NftRenderer:
    """The nftables renderer on Linux bridges (see :mod:`fluidedge.secgroups.nft`)."""

    nft: Nft = field(default_factory=Nft)
    # full: every apply replaces the tables whole (the benchmark's baseline)
    full: bool = False
    _tags: dict[str, dict[str, int]] = field(default_factory=dict)
    _installed: dict[str, tuple[Table, Table] | None] = field(default_factory=dict)
    _prepared: set[str | None] = field(default_factory=set)
    _shapes: dict[str, tuple[Shape, ...]] = field(default_factory=dict)
    # network -> its tables' content digests, learnt at the first check after an apply of
    # ours that finds the shapes whole (see fluidedge.secgroups.nftcheck)
    _digests: dict[str, dict[tuple[str, str], str | None]] = field(default_factory=dict)
    _applies: Applies = field(default_factory=Applies)

    def tags(self, program: FilterProgram, network: str) -> dict[str, int]:
        """Stable tags (1..65535) for the network's filtered devices."""
        tags = self._tags.setdefault(network, {})
        devices = {p.device for p in program.ports if p.network == network and p.port_security}
        for gone in set(tags) - devices:
            del tags[gone]
        used = set(tags.values())
        free = (t for t in range(1, MAX_TAG + 1) if t not in used)
        for device in sorted(devices - set(tags)):
            tag = next(free, None)
            if tag is None:
                raise FilterFailure(f"network {network}: more than {MAX_TAG} filtered ports")
            tags[device] = tag
        return dict(tags)

    def render(
        self, program: FilterProgram, binding: Binding
    ) -> tuple[str, tuple[Table, Table] | None]:
        """The transaction that brings the network's tables to ``program`` (only what changed
        since the last apply when the tables' skeleton is the same, else the whole tables),
        and the tables it installs."""
        tables = build_tables(program, binding, self.tags(program, binding.network))
        if binding.network in self._installed and not self.full:
            old = self._installed[binding.network]
            if old is not None and tables is not None:
                diff = render_diff(old, tables)
                if diff is not None:
                    return diff, tables
            elif old is None and tables is None:
                return "", tables
        return render_full(binding.network, tables), tables

    def apply_network(self, program: FilterProgram, binding: Binding) -> bool:
        text, tables = self.render(program, binding)
        if not text:
            return False
        if binding.netns not in self._prepared:
            self.nft.enable_bridge_conntrack(binding.netns)
            self._prepared.add(binding.netns)
        with self._applies.under_way(binding.network):
            try:
                self.nft.apply(binding.netns, text)
            except Exception:
                # what is installed is unknown now: the next apply replaces the tables whole
                self._installed.pop(binding.network, None)
                self._shapes.pop(binding.network, None)
                self._digests.pop(binding.network, None)
                raise
            self._installed[binding.network] = tables
            self._shapes[binding.network] = tuple(shape_of(t) for t in tables or ())
            self._digests.pop(binding.network, None)  # learnt again at the next check
        return True

    def remove_network(self, binding: Binding) -> None:
        with self._applies.under_way(binding.network):
            self.nft.apply(binding.netns, render_removal(binding.network))
            self._installed.pop(binding.network, None)
            self._shapes.pop(binding.network, None)
            self._digests.pop(binding.network, None)
        self._tags.pop(binding.network, None)

    def check_installed(self, bindings: list[Binding]) -> dict[str, str]:
        """The networks whose installed tables no longer hold, and why: a table deleted
        (``nft flush ruleset``, as ``systemctl restart nftables`` does with Debian's
        ``/etc/nftables.conf``), emptied or changed in part (``nft flush table``, ``delete
        rule``, ``flush set``: see :mod:`fluidedge.secgroups.nftcheck`), or bridged frames no
        longer sent through the inet hooks (the ``br_netfilter`` knobs set to 0). Each leaves
        the network's ports filtered otherwise than its policy says. What it finds lost it
        forgets, so the next apply installs it whole again. One ``nft -j list ruleset`` and
        one ``sysctl`` read per namespace.

        It runs beside applies (the driver's lock is not held: instance creations take it):
        a network with a transaction of ours under way or done during the listing is not
        judged (its next check is)."""
        lost: dict[str, str] = {}
        by_netns: dict[str | None, list[Binding]] = {}
        for binding in bindings:
            if self._installed.get(binding.network) is not None:  # tables of ours to check
                by_netns.setdefault(binding.netns, []).append(binding)
        for netns, group in by_netns.items():
            before = {b.network: self._applies.seen(b.network) for b in group}
            wanted = {b.network: self._shapes.get(b.network, ()) for b in group}
            objects = parse_listing(self.nft.ruleset(netns))
            listed, digests = shapes_of(objects), digests_of(objects)
            knobs = self.nft.bridge_conntrack_on(netns)
            if not knobs:
                self._prepared.discard(netns)
            for binding in group:
                network = binding.network
                tables = self._installed.get(network)
                if tables is None or not self._applies.settled(network, before[network]):
                    continue
                missing: list[str] = []
                changed: list[str] = []
                for table, want in zip(tables, wanted[network], strict=True):
                    have = listed.get((table.family, table.name))
                    if have is None:
                        missing.append(f"{table.family} {table.name}")
                    elif differ := changes(want, have):
                        changed.append(
                            f"table {table.family} {table.name} changed from outside "
                            f"({summary(differ)})"
                        )
                if missing:
                    changed.insert(0, f"table {', '.join(missing)} removed from outside")
                elif not changed:
                    changed = self._contents_changed(network, tables, digests, before[network])
                if changed:
                    lost[network] = "; ".join([*changed, NOT_AS_DECLARED])
                elif not knobs:
                    lost[network] = (
                        "net.bridge.bridge-nf-call-ip(6)tables set to 0; its ports were unfiltered"
                    )
                else:
                    continue
                self._installed.pop(network, None)
                self._shapes.pop(network, None)
                self._digests.pop(network, None)
        return lost

    def _contents_changed(
        self,
        network: str,
        tables: tuple[Table, Table],
        digests: dict[tuple[str, str], str],
        before: int,
    ) -> list[str]:
        """The tables whose rules or set elements differ from what the first check after our
        apply found, their shapes whole (a rule replaced by another); learnt if unknown,
        unless an apply of ours began since the applies' count ``before`` (the listing is
        then not its: learnt at the next check)."""
        now = {(t.family, t.name): digests.get((t.family, t.name)) for t in tables}
        known = self._digests.get(network)
        if known is None:
            self._digests[network] = now
            if not self._applies.settled(network, before):
                self._digests.pop(network, None)
            return []
        return [
            f"table {family} {name} changed from outside (a rule or a set's elements replaced)"
            for (family, name), digest in now.items()
            if known.get((family, name)) != digest
        ]

    def zone_netns(self, binding: Binding) -> str | None:
        return binding.netns

    def forget_device(self, device: str) -> None:
        return None  # names devices, not numbers

    def zones_in_use(self, netns: str | None) -> set[int]:
        """The conntrack zones our tables in ``netns`` set, whoever installed them: another
        daemon's networks in the same namespace share its conntrack table, so a zone must not
        be taken twice there (see :func:`fluidedge.secgroups.service.pick_zone`)."""
        used: set[int] = set()
        for family, name in self.nft.tables(netns):
            if family == "inet":
                used.update(zones_set_by(self.nft.list_table(netns, family, name)))
        return used

    def installed_networks(self, netns: str | None) -> set[str]:
        """Networks with tables in ``netns`` (for reconciliation at start)."""
        from fluidedge.secgroups.nft import TABLE_PREFIX  # noqa: PLC0415

        return {name[len(TABLE_PREFIX) :].replace("_", "-") for _, name in self.nft.tables(netns)}


_ZONE_SET = re.compile(r"\bct zone set (\d+)\b")


def zones_set_by(listing: str) -> set[int]:
    """The zones an ``nft list table`` listing sets."""
    return {int(m.group(1)) for m in _ZONE_SET.finditer(listing)}


class FirewallDriver:
    """The seed's firewall driver API; thread-safe (one lock around model and apply)."""

    def __init__(
        self, renderer: Renderer, conntrack: Conntrack | None = None, *, incremental: bool = True
    ) -> None:
        self.renderer = renderer
        # incremental=False: every apply compiles the whole model afresh (the baseline the
        # benchmark compares the incremental compiler with)
        self.incremental = incremental
        self._compiler = Compiler()
        self.conntrack = conntrack if conntrack is not None else Conntrack()
        self._ports: dict[str, Port] = {}
        self._groups: dict[str, SecurityGroup] = {}
        self._bindings: dict[str, Binding] = {}
        self._program: FilterProgram | None = None
        self._dirty: set[str] = set()
        self._deferred = 0
        self._lock = threading.RLock()
        # Told the namespaces with networks whenever they change (the part's
        # fluidedge.secgroups.nftwatch.NftWatch: the rules' check woken by the kernel).
        self.watcher: Callable[[set[str | None]], None] | None = None

    # -- networks -------------------------------------------------------------------------

    def bind_network(self, binding: Binding) -> None:
        with self._lock:
            self._bindings[binding.network] = binding
            self._mark({binding.network})
            self._tell_watcher()

    def unbind_network(self, network: str) -> None:
        with self._lock:
            binding = self._bindings.pop(network, None)
            if binding is not None:
                self.renderer.remove_network(binding)
            self._dirty.discard(network)
            self._tell_watcher()

    def namespaces(self) -> set[str | None]:
        """The namespaces with networks bound."""
        with self._lock:
            return {b.netns for b in self._bindings.values()}

    def _tell_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher(self.namespaces())

    # -- the seed's API ---------------------------------------------------------------------

    def prepare_port_filter(self, port: Port) -> None:
        """A new port's filter (idempotent: a port known already is updated)."""
        self.update_port_filter(port)

    def update_port_filter(self, port: Port) -> None:
        with self._lock:
            old = self._ports.get(port.id)
            self._ports[port.id] = port
            # Plugged (again): a renderer that numbers ports asks for this one's anew.
            self.renderer.forget_device(port.device)
            networks = {port.network} | ({old.network} if old else set())
            self._mark(networks)

    def remove_port_filter(self, port_id: str) -> None:
        with self._lock:
            old = self._ports.pop(port_id, None)
            if old is not None:
                self._mark({old.network})

    def update_security_group_rules(self, group_id: str, rules: tuple[Rule, ...]) -> None:
        """Replace a group's rules (the group is created, default tenant, if unknown)."""
        with self._lock:
            old = self._groups.get(group_id)
            if old is None:
                group = SecurityGroup(id=group_id, rules=rules)
            else:
                group = SecurityGroup(
                    id=group_id, tenant=old.tenant, rules=rules, description=old.description
                )
            self.set_group(group)

    def update_security_group_members(self, group_id: str) -> None:
        """Refresh the address sets of ``group_id`` (members follow from the ports)."""
        with self._lock:
            self._mark(self._networks_referencing(group_id))

    # -- model ------------------------------------------------------------------------------

    def set_group(self, group: SecurityGroup) -> None:
        with self._lock:
            old = self._groups.get(group.id)
            self._groups[group.id] = group
            self._mark(
                self._networks_using(group.id)
                | self._networks_referencing(group.id)
                | self._networks_of_remotes(group, old)
            )

    def remove_group(self, group_id: str) -> None:
        with self._lock:
            old = self._groups.get(group_id)
            if old is None:
                raise GroupNotFound(f"security group {group_id!r} does not exist")
            self._mark(
                self._networks_using(group_id)
                | self._networks_referencing(group_id)
                | self._networks_of_remotes(old)
            )
            del self._groups[group_id]

    def ports(self) -> dict[str, Port]:
        with self._lock:
            return dict(self._ports)

    def groups(self) -> dict[str, SecurityGroup]:
        with self._lock:
            return dict(self._groups)

    @property
    def program(self) -> FilterProgram | None:
        return self._program

    @contextlib.contextmanager
    def defer_apply(self) -> Iterator[None]:
        """Batch the calls made inside into one apply at the end (nesting allowed)."""
        with self._lock:
            self._deferred += 1
            try:
                yield
            finally:
                self._deferred -= 1
            if self._deferred == 0:
                self.apply()

    def apply(self) -> None:
        """Compile, render the dirty networks, cut connections the new program refuses."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            try:
                if not self.incremental:
                    self._compiler = Compiler()
                program = self._compiler.compile(self._ports.values(), self._groups)
            except Exception:
                self._dirty |= dirty
                raise
            old = self._program
            self._program = program
            failed: Exception | None = None
            for network in sorted(dirty):
                binding = self._bindings.get(network)
                if binding is None:
                    continue
                try:
                    changed = self.renderer.apply_network(program, binding)
                except Exception as exc:  # the others are applied all the same
                    self._dirty.add(network)  # pending: the next apply (or check) tries again
                    failed = failed or exc
                    continue
                if changed and old is not None and narrowed(old, program, network):
                    self._cut(program, binding)
            if failed is not None:
                raise failed

    def heal(self) -> dict[str, str]:
        """Re-install the networks whose rules were taken away from outside (see
        :meth:`NftRenderer.check_installed`; a renderer without that check has nothing to
        heal). Returns the healed networks and why they were lost.

        What their ports opened while unfiltered does not survive it: those connections were
        tracked outside the network's conntrack zone (its zone chains were gone) or not at
        all (the knobs at 0), so their next packet is a new one that is not a SYN, dropped
        (``tests/functional/secgroups/test_rules_lost.py``).

        Then the networks a failed apply left pending are applied again
        (:meth:`retry_pending`)."""
        lost = self._heal()
        self.retry_pending()
        return lost

    def _heal(self) -> dict[str, str]:
        check = getattr(self.renderer, "check_installed", None)
        if check is None:
            return {}
        with self._lock:
            bindings = list(self._bindings.values())
        # The check's reads (subprocesses, milliseconds) without the lock, which every port
        # change of an instance creation takes. A change applied meanwhile at worst makes
        # the re-install below a whole one instead of a no-op.
        lost: dict[str, str] = check(bindings)
        if not lost:
            return lost
        with self._lock:
            lost = {n: why for n, why in lost.items() if n in self._bindings}
            for network, why in sorted(lost.items()):
                log.error(
                    "secgroups: network %s: %s: rules re-installed",
                    network,
                    why,
                    extra={"part": "secgroups", "event": "rules_lost", "ids": network},
                )
            self._mark(set(lost))
        return lost

    def retry_pending(self) -> None:
        """Apply the networks a failed apply left pending (their switch was down, their
        namespace gone: e.g. at a start after a reboot); raises while one still fails."""
        with self._lock:
            if self._dirty and self._deferred == 0:
                self.apply()

    def _cut(self, program: FilterProgram, binding: Binding) -> None:
        zone = program.zone_of(binding.network)
        if zone is None:
            return
        netns = self.renderer.zone_netns(binding)
        for entry in self.conntrack.entries(netns, zone):
            src = owner_of(program, binding.network, entry.src)
            dst = owner_of(program, binding.network, entry.dst)
            if (src or dst) and not admits_new(program, src, dst, entry.flow()):
                log.info("secgroups: cutting %s (zone %d)", entry, zone)
                self.conntrack.delete(netns, entry)

    # -- helpers ----------------------------------------------------------------------------

    def _mark(self, networks: set[str]) -> None:
        self._dirty |= networks
        if self._deferred == 0:
            self.apply()

    def _networks_using(self, group_id: str) -> set[str]:
        return {p.network for p in self._ports.values() if group_id in p.groups}

    def _networks_of_remotes(self, *groups: SecurityGroup | None) -> set[str]:
        """Networks with members of the groups that ``groups``' rules name as remotes: what
        each port adds to a remote-group set shared with other nodes follows those rules."""
        remotes = {r.remote_group for g in groups if g for r in g.rules if r.remote_group}
        return set().union(*(self._networks_using(r) for r in remotes))

    def _networks_referencing(self, group_id: str) -> set[str]:
        """Networks with a port whose groups name ``group_id`` as a remote group, plus the
        networks of the group's members (their addresses are the set's contents)."""
        referencing = {
            g.id for g in self._groups.values() for r in g.rules if r.remote_group == group_id
        }
        return {
            p.network for p in self._ports.values() if referencing & set(p.groups)
        } | self._networks_using(group_id)
