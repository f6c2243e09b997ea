"""Hot routes: the few calls the edge middleware serves without FastAPI's per-request machinery.

FastAPI routes every request through Starlette's router (a linear match over every route of
every part), solves the endpoint's dependencies and wraps the call in several layers: about
0.5 ms per request on this 2-CPU host, more than a warm instance creation's own work. A part
may name a few latency-critical calls (the instance manager: create, pause, resume) as
:class:`HotRoute` objects; :class:`fluidedge.daemon.edge.EdgeMiddleware` then answers them
directly, *after* its own rules (token, tenant, methods, body limit, audit, metrics, which
therefore hold unchanged), with the same handler code the FastAPI route runs.

A hot handler serves only the plain case and hands everything else back by returning None
(e.g. a body that does not validate, so that the 400 and its reason are FastAPI's own, or a
query string): the request then goes to the FastAPI route as if the hot route did not exist,
with its body replayed. The FastAPI route stays the API's declaration (OpenAPI document,
fallback). A :class:`~fluidedge.errors.FluidedgeError` raised by a handler is answered with its
kind's status and ``{"detail": ...}``, as the application's handler would.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

Scope = MutableMapping[str, Any]
# (scope, path parameters, the request's body) -> the answer, or None: let FastAPI answer.
HotHandler = Callable[[Scope, dict[str, str], bytes], Awaitable[Response | None]]

_PARAM = re.compile(r"\\\{([a-z_][a-z0-9_]*)\\\}")


@dataclass(frozen=True)
class HotRoute:
    """``method`` on ``path`` (a route template, ``{name}`` matching one path segment, as in
    FastAPI) served by ``handler``; ``path`` is also the request metrics' route label."""

    method: str
    path: str
    handler: HotHandler
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = _PARAM.sub(r"(?P<\1>[^/]+)", re.escape(self.path))
        object.__setattr__(self, "regex", re.compile(f"^{pattern}$"))

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if this route serves ``method`` ``path``, else None."""
        if method != self.method:
            return None
        found = self.regex.match(path)
        return None if found is None else found.groupdict()


def find(routes: list[HotRoute], method: str, path: str) -> tuple[HotRoute, dict[str, str]] | None:
    """The first of ``routes`` serving ``method`` ``path``, and its path parameters."""
    for route in routes:
        params = route.match(method, path)
        if params is not None:
            return route, params
    return None
