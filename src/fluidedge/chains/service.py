"""The chain service: declared objects, checked as a whole, stored, and pushed to data planes.

Every change builds the candidate :class:`~fluidedge.chains.model.ChainState`, checks it
(:func:`~fluidedge.chains.model.check_state` and a compile per data plane happen before
anything is stored), stores it, then applies it to each data plane (one per ``ovs``
network's bridge). A bad request therefore changes nothing. :meth:`ChainService.reconcile`
re-applies when the set of ports on a bridge changed (an instance died or was deleted: its
members leave their groups; one came back: it rejoins) or its chain flows went missing (the
security groups' renderer replaced the bridge's table), which the part polls.

Classifiers naming a TOF service (:mod:`.tof`) are made concrete with the TOF's services
(``services``) before every compile; the poll re-applies when a service's address changed.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from fluidedge.chains.errors import (
    ChainConflict,
    ChainObjectNotFound,
    ChainsError,
    ChainUnprocessable,
    InvalidChain,
)
from fluidedge.chains.model import (
    DEFAULT_TENANT,
    ChainState,
    FlowClassifier,
    PortChain,
    PortPair,
    PortPairGroup,
    check_state,
    free_chain_id,
)
from fluidedge.chains.persist import Tables
from fluidedge.chains.tof import resolve
from fluidedge.core.fields import IPNetwork
from fluidedge.core.store import RECOVERY, StoreDamaged


class DataPlane(Protocol):
    """One bridge's chains: :class:`fluidedge.chains.ovs.OvsChains` (OpenFlow, ``ovs``
    networks) or :class:`fluidedge.chains.linuxbridge.LinuxChains` (tc/eBPF, ``linuxbridge``
    networks)."""

    bridge: str

    def check(self, state: ChainState) -> None: ...

    def apply(self, state: ChainState) -> int: ...

    def ofports(self) -> dict[str, int]: ...

    def port_macs(self) -> dict[str, str]: ...

    def port_packets(self, ports: builtins.list[str]) -> dict[str, tuple[int, int]]: ...

    def intact(self) -> bool: ...

    def member_flows(self, port: str) -> builtins.list[dict[str, Any]]: ...


Kind = str
_FIELD = {
    "port_pair": "port_pairs",
    "port_pair_group": "groups",
    "flow_classifier": "classifiers",
    "port_chain": "chains",
}
_NAME = {
    "port_pair": "port pair",
    "port_pair_group": "port pair group",
    "flow_classifier": "flow classifier",
    "port_chain": "port chain",
}


def _parse(kind: Kind, doc: Mapping[str, Any], state: ChainState) -> Any:
    if kind == "port_pair":
        return PortPair.from_json(doc)
    if kind == "port_pair_group":
        return PortPairGroup.from_json(doc)
    if kind == "flow_classifier":
        return FlowClassifier.from_json(doc)
    if kind == "port_chain":
        old = state.chains.get(str(doc.get("id", "")))
        number = old.chain_id if old is not None else free_chain_id(state.chains.values())
        return PortChain.from_json(doc, chain_id=number)
    raise InvalidChain(f"unknown kind {kind!r}")


_FROM_JSON: dict[Kind, Callable[[Mapping[str, Any]], Any]] = {
    "port_pair": PortPair.from_json,
    "port_pair_group": PortPairGroup.from_json,
    "flow_classifier": FlowClassifier.from_json,
    "port_chain": PortChain.from_json,
}


def _stored(kind: str, doc: Mapping[str, Any]) -> tuple[Kind, Any]:
    """A stored object as the model makes it. What the model refuses is a ``ValueError``:
    :func:`fluidedge.core.rows.load` then sets the row aside instead of stopping the start."""
    parse = _FROM_JSON.get(kind)
    if parse is None:
        raise ValueError(f"unknown kind {kind!r}")
    try:
        return kind, parse(doc)
    except (InvalidChain, ChainUnprocessable) as exc:
        raise ValueError(str(exc)) from exc


def _present(table: Mapping[str, Any], ref: str, tenant: str) -> bool:
    """Whether ``ref`` is there for ``tenant`` (another tenant's is missing, as
    :func:`~fluidedge.chains.model.check_state` counts it)."""
    obj = table.get(ref)
    return obj is not None and obj.tenant == tenant


def _dangling(state: ChainState) -> list[tuple[Kind, str, str]]:
    """The groups and chains that name an object ``state`` lacks: (kind, id, what)."""
    found: list[tuple[Kind, str, str]] = []
    for g in state.groups.values():
        missing = [
            f"port pair {p!r}" for p in g.port_pairs if not _present(state.port_pairs, p, g.tenant)
        ]
        if missing:
            found.append(("port_pair_group", g.id, ", ".join(missing)))
    for c in state.chains.values():
        missing = [
            f"port pair group {x!r}"
            for x in c.port_pair_groups
            if not _present(state.groups, x, c.tenant)
        ]
        missing += [
            f"flow classifier {x!r}"
            for x in c.flow_classifiers
            if not _present(state.classifiers, x, c.tenant)
        ]
        if missing:
            found.append(("port_chain", c.id, ", ".join(missing)))
    return found


def _without(state: ChainState, kind: Kind, object_id: str) -> ChainState:
    table = getattr(state, _FIELD[kind])
    return replace(state, **{_FIELD[kind]: {k: v for k, v in table.items() if k != object_id}})


def _damaged(exc: ChainsError) -> StoreDamaged:
    return StoreDamaged(
        f"refusing to start: the stored chain objects do not check together ({exc}); no one "
        f"row can be set aside for it.\n{RECOVERY}"
    )


class ChainService:
    def __init__(
        self,
        tables: Tables,
        planes: Callable[[], Iterable[DataPlane]],
        services: Callable[[], Mapping[str, IPNetwork]] | None = None,
    ) -> None:
        self.tables = tables
        self.planes = planes
        self.services = services or dict
        self.state = ChainState({}, {}, {}, {})
        self._lock = threading.RLock()
        # bridge -> its ports as last applied: names *and* numbers (an instance made again
        # under its id by its restart policy plugs a device of the same name, with a new
        # OpenFlow port or ifindex, that holds none of the steering)
        self._ports: dict[str, frozenset[tuple[str, int]]] = {}
        self._applied: ChainState | None = None

    def effective(self, state: ChainState | None = None) -> ChainState:
        """What the data planes get: ``state`` (default: the declared one) with TOF service
        classifiers made concrete."""
        return resolve(self.state if state is None else state, self.services())

    # ------------------------------------------------------------------ state
    def load(self) -> None:
        """The stored objects, checked as a whole: the start serves a state that checks or
        none (a half-checked one would be half-applied).

        A row that does not decode is set aside (:mod:`fluidedge.core.rows`); the groups and
        chains that name it then name nothing, so they are set aside in turn (a chain whose
        group went goes too), until the rest checks. What still does not check (a conflict,
        which no one row can be blamed for) refuses the start as a damaged store."""
        tables: dict[str, dict[str, Any]] = {name: {} for name in _FIELD.values()}
        for kind, obj in self.tables.stored_objects(_stored):
            tables[_FIELD[kind]][obj.id] = obj
        state = self._settled(ChainState(**tables))
        with self._lock:
            self.state = state

    def _settled(self, state: ChainState) -> ChainState:
        """``state`` without the objects that name a missing one (each set aside)."""
        while True:
            try:
                check_state(state)
            except ChainObjectNotFound as exc:
                dangling = _dangling(state)
                if not dangling:
                    raise _damaged(exc) from exc
                for kind, object_id, missing in dangling:
                    self.tables.set_aside(
                        kind,
                        object_id,
                        f"{_NAME[kind]} {object_id!r} names {missing}, not stored "
                        "(set aside, or never stored): it would not check",
                    )
                    state = _without(state, kind, object_id)
            except ChainsError as exc:
                raise _damaged(exc) from exc
            else:
                return state

    def list(self, kind: Kind, tenant: str | None = None) -> list[Any]:
        table: Mapping[str, Any] = getattr(self.state, _FIELD[kind])
        return [o for _, o in sorted(table.items()) if tenant is None or o.tenant == tenant]

    def get(self, kind: Kind, object_id: str) -> Any:
        found = getattr(self.state, _FIELD[kind]).get(object_id)
        if found is None:
            raise ChainObjectNotFound(f"no {_NAME[kind]} {object_id!r}")
        return found

    def _with(self, kind: Kind, object_id: str, obj: Any | None) -> ChainState:
        table = dict(getattr(self.state, _FIELD[kind]))
        if obj is None:
            table.pop(object_id, None)
        else:
            table[object_id] = obj
        return replace(self.state, **{_FIELD[kind]: table})

    def _commit(self, state: ChainState, store: Callable[[], None]) -> None:
        """Check ``state`` whole (model, then a compile per bridge: conflicts the switch would
        meet), then ``store`` it, then apply it: a refused change has stored nothing."""
        check_state(state)
        planes = list(self.planes())
        effective = self.effective(state)
        for plane in planes:
            plane.check(effective)
        store()
        self.state = state
        self._applied = effective
        for plane in planes:
            plane.apply(effective)
            self._ports[plane.bridge] = frozenset(plane.ofports().items())

    def create(self, kind: Kind, doc: Mapping[str, Any], tenant: str = DEFAULT_TENANT) -> Any:
        with self._lock:
            body = {**doc, "tenant": doc.get("tenant", tenant)}
            obj = _parse(kind, body, self.state)
            if obj.id in getattr(self.state, _FIELD[kind]):
                raise ChainConflict(f"{_NAME[kind]} {obj.id!r} exists")
            state = self._with(kind, obj.id, obj)
            self._commit(state, lambda: self.tables.put(kind, obj.to_json()))
            return obj

    def update(self, kind: Kind, object_id: str, doc: Mapping[str, Any]) -> Any:
        """PUT: the whole object again (its id, tenant and chain number stay)."""
        with self._lock:
            old = self.get(kind, object_id)
            body = {**doc, "id": object_id, "tenant": old.tenant}
            if kind == "port_chain":
                body["chain_id"] = old.chain_id
            obj = _parse(kind, body, self.state)
            state = self._with(kind, object_id, obj)
            self._commit(state, lambda: self.tables.put(kind, obj.to_json()))
            return obj

    def delete(self, kind: Kind, object_id: str) -> None:
        with self._lock:
            self.get(kind, object_id)
            state = self._with(kind, object_id, None)
            try:
                check_state(state)
            except ChainObjectNotFound as exc:
                raise ChainConflict(f"{_NAME[kind]} {object_id!r} is in use ({exc})") from None
            self._commit(state, lambda: self.tables.delete(kind, object_id))

    def pair_packets(self, pair_id: str) -> dict[str, Any]:
        """What the switch handed a function and took back from it: per leg, the packets
        sent to the function's port and those it sent in (its own chatter included, which
        the chain drops), as the datapath counts them."""
        with self._lock:
            pair: PortPair = self.get("port_pair", pair_id)
            legs = {"ingress": pair.ingress, "egress": pair.egress}
            found: dict[str, tuple[int, int]] = {}
            for plane in self.planes():
                found.update(plane.port_packets(sorted(set(legs.values()))))
        out: dict[str, Any] = {"id": pair_id}
        for leg, port in legs.items():
            if port in found:
                received, sent = found[port]
                out[leg] = {"port": port, "to_function": sent, "from_function": received}
            else:
                out[leg] = None
        return out

    def pair_flows(self, pair_id: str) -> dict[str, Any]:
        """The flows the switch pinned to a function (its pair's ingress names the member),
        each direction with its packets and bytes: what it saw, flow by flow."""
        with self._lock:
            pair: PortPair = self.get("port_pair", pair_id)
            flows: builtins.list[dict[str, Any]] = []
            for plane in self.planes():
                flows += plane.member_flows(pair.ingress)
        return {"id": pair_id, "flows": flows}

    # ------------------------------------------------------------------ data planes
    def apply_all(self) -> None:
        """Install the whole state on every data plane (start: reconciles what is there)."""
        with self._lock:
            effective = self._applied = self.effective()
            for plane in self.planes():
                plane.apply(effective)
                self._ports[plane.bridge] = frozenset(plane.ofports().items())

    def reconcile(self) -> builtins.list[str]:
        """Re-apply on the bridges whose ports changed or whose chain flows someone else
        removed (a whole-table replace, a vswitchd restart), and all of them when a TOF
        service a classifier names changed; the bridges re-applied."""
        done = []
        with self._lock:
            effective = self.effective()
            changed = effective != self._applied
            self._applied = effective
            for plane in self.planes():
                ports = frozenset(plane.ofports().items())
                if changed or self._ports.get(plane.bridge) != ports or not plane.intact():
                    plane.apply(effective)
                    self._ports[plane.bridge] = ports
                    done.append(plane.bridge)
        return done
