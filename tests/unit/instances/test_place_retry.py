"""Forwarding a creation: a node placement picked that refuses for lack of room is left out and
placement asked again (``instances.api._place``), over a fake placer behind the ``Placer`` seam
(the multi-host tier runs the cluster part's real one against real nodes)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from fluidedge.instances.api import NODE_HEADER, _place
from fluidedge.instances.models import InstanceRequest


@dataclass
class FakePlacer:
    """Nodes in placement order; ``full`` refuse for lack of room."""

    order: list[str | None]
    full: set[str]
    asked: list[frozenset[str]] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)

    def target(self, request: Any, template: Any, *, admin: bool, forwarded: str | None,
               exclude: frozenset[str] = frozenset()) -> str | None:  # fmt: skip
        self.asked.append(exclude)
        return next(n for n in self.order if n not in exclude)

    async def forward(self, node: str, body: Any, tenant: str | None) -> tuple[int, bytes, bool]:
        self.sent.append(node)
        if node in self.full:
            return 409, b'{"detail": "no room"}', True
        return 201, json.dumps({"name": body["name"], "node": node}).encode(), False


def place(placer: FakePlacer, **more: Any) -> Any:
    manager = SimpleNamespace(placer=placer, templates={})
    sc = SimpleNamespace(
        who=lambda _http: SimpleNamespace(is_admin=True, kind="admin", tenant=None),
    )
    http = SimpleNamespace(headers={})
    request = InstanceRequest.model_validate({"name": "i", "template": "t", **more})
    return asyncio.run(_place(manager, sc, http, request, None))  # type: ignore[arg-type]


def test_a_full_node_is_left_out_and_the_next_one_runs_it() -> None:
    placer = FakePlacer(["b", "c", None], full={"b"})
    answer = place(placer)
    assert answer.status_code == 201
    assert answer.headers[NODE_HEADER] == "c"
    assert placer.sent == ["b", "c"]
    assert placer.asked == [frozenset(), frozenset({"b"})]


def test_when_every_other_node_is_full_it_runs_here() -> None:
    placer = FakePlacer(["b", "c", None], full={"b", "c"})
    assert place(placer) is None  # None: run here (its own admission decides)
    assert placer.sent == ["b", "c"]


def test_a_named_node_that_is_full_is_the_answer() -> None:
    placer = FakePlacer(["b", None], full={"b"})
    answer = place(placer, node="b")
    assert answer.status_code == 409  # the request named it: no other node instead
    assert placer.sent == ["b"]
