"""The order in which the Linux-bridge adapter switches a bridge's ports to a new plan (pure).

A packet crosses several chain ports, and each crossing is a run of the program that reads
that port's entry afresh. The adapter switches the entries one map write at a time, so while
it does, one packet can meet a port already on the new plan and, further on, one still on the
old. Switched in an arbitrary order (ifindex order, as before), a chain that gained a hop had
its first function's return leg steer into the new function while the new function's return
leg still dropped everything (a function's leg that no rule takes isolates), and a chain that
lost the hop turned that leg away while packets were still inside the function. Make before
break, per port:

- a port that the new plan's rules steer packets into (where they come back into the
  program: a member's egress leg forward, its ingress leg in reverse) switches *before* the
  ports that steer into it, so a packet sent the new way finds the new rules where it comes
  back (:func:`order`: dependencies first);
- a port that the old plan steered packets into and the new plan does not (a function leaving
  a chain: its legs fall back to dropping) is *retiring*: it switches last, after the adapter's
  drain, once the ports that sent it packets have switched and those packets have left.

Where the two plans disagree (a port steers into another in both), either order serves the
packet: both of the target's entries take what the port sends. A one-armed function in a
symmetric chain returns both ways through one port, so its chain's ports can form a cycle;
the order breaks it where it closes (one direction keeps a window of a few map writes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fluidedge.chains.tcplan import FWD, Plan, position_of

__all__ = ["Switch", "order", "targets"]


@dataclass(frozen=True)
class Switch:
    """Port ifindexes in the order their entries are switched: ``first`` now, ``last`` after
    the drain (the retiring ports)."""

    first: tuple[int, ...]
    last: tuple[int, ...]


def targets(plan: Plan) -> dict[int, frozenset[int]]:
    """For each port of ``plan``, the ports where the packets its rules steer come back into
    the program: the return legs of every group a rule's packet can reach (its position and,
    past a tap or a fail-open skip, every later one in its direction; a tap's copies never
    come back)."""
    out: dict[int, frozenset[int]] = {}
    for index, port in plan.ports.items():
        into: set[int] = set()
        for rule in port.rules:
            entered = plan.groups.get(rule.position) if rule.position else None
            if entered is None:
                continue
            chain, k = rule.position >> 8, rule.position & 0xFF
            ks = range(k, entered.n + 1) if rule.direction == FWD else range(k, 0, -1)
            for j in ks:
                group = plan.groups.get(position_of(chain, j))
                if group is None or group.tap:
                    continue
                for m in group.members:
                    into.add(m.egress if rule.direction == FWD else m.ingress)
        into.discard(index)
        out[index] = frozenset(into)
    return out


def _sorted(ports: Iterable[int], into: Mapping[int, frozenset[int]]) -> tuple[int, ...]:
    """``ports`` with each after the ones it steers into (depth-first, in ifindex order; a
    cycle is cut where it closes)."""
    wanted = set(ports)
    done: list[int] = []
    state: dict[int, bool] = {}  # False: on the current path, True: placed
    for start in sorted(wanted):
        if start in state:
            continue
        stack = [(start, iter(sorted(into.get(start, frozenset()) & wanted)))]
        state[start] = False
        while stack:
            port, pending = stack[-1]
            nxt = next((p for p in pending if p not in state), None)
            if nxt is None:
                stack.pop()
                state[port] = True
                done.append(port)
            else:
                state[nxt] = False
                stack.append((nxt, iter(sorted(into.get(nxt, frozenset()) & wanted))))
    return tuple(done)


def order(old: Plan | None, new: Plan) -> Switch:
    """The order in which to switch every port of ``new`` from ``old`` (None: nothing was
    steering, as at the first apply)."""
    into = targets(new)
    now = {p for ports in into.values() for p in ports}
    before = {p for ports in targets(old).values() for p in ports} if old is not None else set()
    retiring = {
        index
        for index, port in new.ports.items()
        if index in before and index not in now and old is not None and old.ports.get(index) != port
    }
    return Switch(
        _sorted(set(new.ports) - retiring, into),
        _sorted(retiring, into),
    )
