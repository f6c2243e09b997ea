"""Delivery of Mp1 notifications: an HTTP POST of JSON to the subscriber's ``callbackReference``.

The platform's thread that made a change calls :meth:`Notifier.submit`; delivery runs on the
daemon's event loop, never on the request's path, so a slow or dead subscriber cannot hold an
API answer. Each notification is tried up to ``attempts`` times (backoff doubling from
``backoff`` seconds) and any 2xx counts as delivered; a failure is logged and counted.

A callback is a URL an app chose, and the daemon would send it a request: the address it
resolves to must lie in ``allowed`` (config ``mec.callback_networks``, loopback and the private
ranges by default), checked on every delivery after resolution, so a name cannot point the
platform at another host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("fluidedge.mec")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class Counters:
    delivered: int = 0
    failed: int = 0
    refused: int = 0  # callback outside the allowed networks
    by_kind: dict[str, int] = field(default_factory=dict)


class Notifier:
    """POSTs notifications from a queue on the event loop it is started on."""

    def __init__(
        self,
        allowed: Sequence[IPNetwork],
        *,
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 5.0,
        concurrency: int = 16,
    ) -> None:
        self.allowed = list(allowed)
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.counters = Counters()
        self._concurrency = concurrency
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self._concurrency)
        # trust_env=False: a proxy from the environment must not see (or relay) callbacks.
        self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        self._loop = None

    def submit(self, kind: str, url: str, body: dict[str, Any]) -> None:
        """Queue one notification (thread-safe; dropped with a log line when not started)."""
        loop = self._loop
        if loop is None:
            log.warning("mec: notification %s to %s dropped: notifier not running", kind, url)
            return
        loop.call_soon_threadsafe(self._spawn, kind, url, body)

    def _spawn(self, kind: str, url: str, body: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(kind, url, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until every queued notification is delivered or given up (tests, stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _allowed(self, url: str) -> str | None:
        """Why ``url`` may not be called (None when it may)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            return f"cannot resolve {host!r}: {exc}"
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if not any(address in net for net in self.allowed):
                return f"{host} resolves to {address}, outside mec.callback_networks"
        return None

    async def _deliver(self, kind: str, url: str, body: dict[str, Any]) -> None:
        client, slots = self._client, self._slots
        if client is None or slots is None:  # stopped meanwhile
            return
        async with slots:
            why = await self._allowed(url)
            if why is not None:
                self.counters.refused += 1
                log.warning("mec: notification %s to %s refused: %s", kind, url, why)
                return
            delay = self.backoff
            for attempt in range(1, self.attempts + 1):
                try:
                    answer = await client.post(url, json=body)
                    if 200 <= answer.status_code < 300:
                        self.counters.delivered += 1
                        self.counters.by_kind[kind] = self.counters.by_kind.get(kind, 0) + 1
                        return
                    problem = f"HTTP {answer.status_code}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if attempt < self.attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
            self.counters.failed += 1
            log.warning(
                "mec: notification %s to %s failed after %d attempts: %s",
                kind,
                url,
                self.attempts,
                problem,
            )
