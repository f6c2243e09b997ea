"""The ``ovn`` renderer of the firewall driver: the program installed as OVN NB rows.

:class:`OvnRenderer` renders one network's part of the program (pure, :mod:`.ovn_render`), reads
what fluidedge put in the NB for that logical switch last (rows tagged with the network), and
applies the difference as **one** ``ovn-nbctl`` transaction with ``--wait=hv``: when
:meth:`apply_network` returns, every chassis has the new policy, so the next packet sees it.
The NB is the source of truth (nothing is cached here), so a restarted daemon converges from
whatever is there. Each node writes only its own rows (port groups per (network, node), its
part of the shared remote-group sets: :mod:`.ovn_render`), so several nodes filtering ports
of one logical switch never undo each other, and a remote group admits its members on every
node.

:class:`OvnConntrack`: OVN handles connections a new program refuses itself (an
``allow-related`` ACL that goes leaves its connections to the drop ACLs, which mark them
``ct_label.blocked``; their next packet is dropped on whichever chassis it meets), and each
chassis' connection tracker is in that chassis' vswitchd, so the driver's own walk of a
zone has nothing to do here: it lists no entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fluidedge.ovn.errors import OvnError
from fluidedge.ovn.nbctl import Nbctl, as_list
from fluidedge.secgroups import ovn_render as acls
from fluidedge.secgroups.compiler import FilterProgram
from fluidedge.secgroups.conntrack import Conntrack, Entry
from fluidedge.secgroups.driver import NOT_AS_DECLARED, Applies, Renderer
from fluidedge.secgroups.errors import FilterFailure
from fluidedge.secgroups.nft import Binding


def read_state(
    nbctl: Nbctl, switch: str, network: str, node: str = ""
) -> tuple[acls.NbState, set[str]]:
    """``node``'s rows for ``network`` now (the shared sets whole), and the logical ports the
    switch ``switch`` has."""
    owner = f'external_ids:{acls.OWNER_KEY}="{network}"'
    lsps, switches, groups, acl_list, sets = nbctl.queries(
        [
            ("Logical_Switch_Port", ["_uuid", "name", "port_security"], ()),
            ("Logical_Switch", ["ports"], (f"name={switch}",)),
            ("Port_Group", ["name", "ports", "acls", "external_ids"], (owner,)),
            ("ACL", ["_uuid", "direction", "priority", "match", "action"], ()),
            ("Address_Set", ["name", "addresses", "external_ids"], (owner,)),
        ]
    )
    lsp_name = {row["_uuid"]: row["name"] for row in lsps}
    if not switches:
        raise FilterFailure(f"ovn: logical switch {switch!r} of network {network!r} is missing")
    on_switch = {lsp_name[u] for u in as_list(switches[0]["ports"]) if u in lsp_name}
    state = acls.NbState()
    for row in lsps:
        if row["name"] in on_switch:
            state.port_security[row["name"]] = tuple(as_list(row["port_security"]))
    acl_rows = {
        row["_uuid"]: acls.Acl(row["direction"], int(row["priority"]), row["match"], row["action"])
        for row in acl_list
    }
    for row in groups:
        if not acls.owned(row["external_ids"], network, node):
            continue  # another node's
        state.port_groups[row["name"]] = acls.PortGroup(
            frozenset(lsp_name[u] for u in as_list(row["ports"]) if u in lsp_name),
            frozenset(acl_rows[u] for u in as_list(row["acls"]) if u in acl_rows),
            tuple(sorted(row["external_ids"].items())),
        )
    for row in sets:
        ids = row["external_ids"]
        if acls.SET_KEY in ids:
            state.shared[row["name"]] = acls.SharedSet(
                frozenset(as_list(row["addresses"])), tuple(sorted(ids.items()))
            )
            mine = ids.get(acls.member_key(node))
            if mine is not None:
                state.address_sets[row["name"]] = tuple(a for a in mine.split(",") if a)
        else:
            state.legacy_sets.add(row["name"])
    return state, on_switch


ATTEMPTS = 3  # a transaction that lost a race with another node's (a set both created)


@dataclass
class OvnRenderer:
    """Installs programs into the NB at ``nbctl`` as the node ``node`` (its chassis name; ""
    for the one writer of a lab); a network's binding names its switch (``Binding.bridge`` =
    the logical switch; ``netns`` is unused: there is no local table). ``owns_port`` tells
    this node's logical ports (whose port security it clears when a network goes)."""

    nbctl: Nbctl | Callable[[], Nbctl]
    lsp_of: acls.LspOf = acls.lsp_by_port_id
    wait: str | None = "hv"
    node: str | Callable[[], str] = ""
    owns_port: Callable[[str], bool] | None = None
    # per network: the program its rows were last made from (what the check renders again)
    _programs: dict[str, FilterProgram] = field(default_factory=dict, init=False, repr=False)
    _applies: Applies = field(default_factory=Applies, init=False, repr=False)

    def _nb(self) -> Nbctl:
        return self.nbctl if isinstance(self.nbctl, Nbctl) else self.nbctl()

    def _node(self) -> str:
        return self.node if isinstance(self.node, str) else self.node()

    def apply_network(self, program: FilterProgram, binding: Binding) -> bool:
        node = self._node()
        desired = acls.render(program, binding.network, self.lsp_of, node)

        def change(current: acls.NbState, on_switch: set[str]) -> acls.NbState:
            missing = set(desired.port_security) - on_switch
            if missing:
                raise FilterFailure(
                    f"ovn: ports {sorted(missing)} are not on logical switch {binding.bridge}"
                )
            return desired

        with self._applies.under_way(binding.network):
            changed = self._converge(binding, change)
            self._programs[binding.network] = program
        return changed

    def remove_network(self, binding: Binding) -> None:
        def change(current: acls.NbState, on_switch: set[str]) -> acls.NbState:
            mine = [
                lsp
                for lsp in current.port_security
                if self.owns_port is None or self.owns_port(lsp)
            ]
            return acls.NbState(port_security=dict.fromkeys(mine, ()))

        with self._applies.under_way(binding.network):
            self._programs.pop(binding.network, None)
            self._converge(binding, change)

    def check_installed(self, bindings: list[Binding]) -> dict[str, str]:
        """The networks whose rows of this node in the NB are no longer what their program
        renders: a port group, an ACL, an address set or a port's port security deleted,
        added or changed from outside (``ovn-nbctl acl-del``, another tool, an operator's
        edit: OVN lets through what no ACL drops, so a deleted ACL opens ports on every
        chassis). One read of the NB per network (what an apply reads), the program rendered
        again, the difference computed as an apply would; the driver then applies, which
        converges. Not judged: a network with an apply of ours under way or done during the
        read, a port not on its logical switch yet (or any more: the apply says so), an NB
        out of reach (the next check is)."""
        lost: dict[str, str] = {}
        mine = [b for b in bindings if b.network in self._programs]
        if not mine:
            return lost  # nothing applied here: no NB to ask (a node without OVN has none)
        node = self._node()
        for binding in mine:
            program = self._programs.get(binding.network)
            if program is None:
                continue
            before = self._applies.seen(binding.network)
            try:
                current, on_switch = read_state(self._nb(), binding.bridge, binding.network, node)
            except (OvnError, FilterFailure):
                continue
            if not self._applies.settled(binding.network, before):
                continue
            desired = acls.render(program, binding.network, self.lsp_of, node)
            if set(desired.port_security) - on_switch:
                continue
            commands = acls.diff(current, desired, binding.network, node)
            if commands:
                lost[binding.network] = (
                    f"its rows in the OVN northbound database changed from outside "
                    f"({acls.describe(commands)}); {NOT_AS_DECLARED}"
                )
        return lost

    def _converge(
        self,
        binding: Binding,
        change: Callable[[acls.NbState, set[str]], acls.NbState],
    ) -> bool:
        """Read, diff, apply as one transaction; then delete the shared sets no node lists.
        A transaction that fails (another node changed the same rows between our read and
        our write: a set both created) is tried again from a new read."""
        node = self._node()
        for attempt in range(ATTEMPTS):
            try:
                nb = self._nb()
                current, on_switch = read_state(nb, binding.bridge, binding.network, node)
                desired = change(current, on_switch)
                commands = acls.diff(current, desired, binding.network, node)
                nb.transact(commands, wait=self.wait)
                for name, ids in acls.abandoned(current, desired, node):
                    nb.delete_if("Address_Set", name, ids)
            except OvnError as exc:
                if attempt == ATTEMPTS - 1:
                    raise FilterFailure(str(exc)) from exc
                continue
            return bool(commands)
        return False  # not reached: the last attempt returns or raises

    def zone_netns(self, binding: Binding) -> str | None:
        return None

    def forget_device(self, device: str) -> None:
        return None  # the NB names logical ports, not numbers


class OvnConntrack(Conntrack):
    """No walk: OVN blocks the connections a new program refuses itself (module doc)."""

    def entries(self, netns: str | None, zone: int) -> list[Entry]:
        return []

    def delete(self, netns: str | None, entry: Entry) -> None:
        return None


class OvnSplit:
    """The daemon's renderer with ``ovn`` networks: those go to :class:`OvnRenderer`, every
    other network to ``inner`` (nftables / OpenFlow by switch). ``is_ovn`` tells them apart;
    the reconciling of ``inner`` passes through (an OVN network has neither:
    the NB is the state, OVN picks its own zones)."""

    def __init__(
        self, inner: Renderer, ovn: OvnRenderer, is_ovn: Callable[[Binding], bool]
    ) -> None:
        self.inner = inner
        self.ovn = ovn
        self.is_ovn = is_ovn
        self.ovn_zones: set[int] = set()

    def _pick(self, binding: Binding) -> Renderer:
        return self.ovn if self.is_ovn(binding) else self.inner

    def apply_network(self, program: FilterProgram, binding: Binding) -> bool:
        renderer = self._pick(binding)
        zone = program.zone_of(binding.network)
        if renderer is self.ovn and zone is not None:
            self.ovn_zones.add(zone)
        return renderer.apply_network(program, binding)

    def remove_network(self, binding: Binding) -> None:
        self._pick(binding).remove_network(binding)

    def zone_netns(self, binding: Binding) -> str | None:
        return self._pick(binding).zone_netns(binding)

    def forget_device(self, device: str) -> None:
        self.inner.forget_device(device)
        self.ovn.forget_device(device)

    def check_installed(self, bindings: list[Binding]) -> dict[str, str]:
        """``inner``'s check on the networks that are not OVN's, the OVN renderer's on the
        others."""
        check = getattr(self.inner, "check_installed", None)
        lost: dict[str, str] = {}
        if check is not None:
            lost.update(check([b for b in bindings if not self.is_ovn(b)]))
        ovn = [b for b in bindings if self.is_ovn(b)]
        if ovn:
            lost.update(self.ovn.check_installed(ovn))
        return lost

    def installed_networks(self, netns: str | None) -> set[str]:
        """The inner renderer's tables in ``netns`` (reconciled at start); none if it keeps
        no tables."""
        installed = getattr(self.inner, "installed_networks", None)
        return set(installed(netns)) if installed is not None else set()

    def conntrack(self, inner: Conntrack) -> Conntrack:
        return _OvnSplitConntrack(self, inner)


class _OvnSplitConntrack(Conntrack):
    def __init__(self, split: OvnSplit, inner: Conntrack) -> None:
        self.split = split
        self.inner = inner

    def entries(self, netns: str | None, zone: int) -> list[Entry]:
        if netns is None and zone in self.split.ovn_zones:
            return []  # OVN blocks refused connections itself
        return self.inner.entries(netns, zone)

    def delete(self, netns: str | None, entry: Entry) -> None:
        self.inner.delete(netns, entry)
