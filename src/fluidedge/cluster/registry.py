"""A node's registration in etcd: its record, its liveness lease, its view of the others.

Every ``heartbeat`` seconds (a thread): keep the lease alive (grant a new one and re-put the
``alive`` key if it had expired, e.g. after etcd was unreachable for longer than ``ttl``),
re-put the node's record when it changed (capacity, committed resources, instance names),
and read every node's record and liveness back into the cached view that placement and
``GET /v1/nodes`` use. etcd expires a silent node's lease by itself: no consensus of ours.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from fluidedge.cluster.config import ClusterConfig
from fluidedge.cluster.errors import ClusterError
from fluidedge.cluster.etcd import Etcd, JsonObject
from fluidedge.cluster.placement import NodeState

log = logging.getLogger("fluidedge.cluster")


class Registry:
    def __init__(
        self,
        config: ClusterConfig,
        etcd: Etcd,
        report: Callable[[], JsonObject],
        after_beat: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.etcd = etcd
        self.report = report  # this node's capacity, committed resources, instances
        self.after_beat = after_beat  # e.g. failover, once the view is fresh
        self.lease: str | None = None
        self._written: JsonObject | None = None
        self._view: list[NodeState] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0
        self.failures = 0
        self.last_read: float | None = None  # monotonic time of the last view read

    def key(self, kind: str, name: str = "") -> str:
        return f"{self.config.prefix}/{kind}/{name}"

    def record(self) -> JsonObject:
        return {"name": self.config.node, "url": self.config.url, **self.report()}

    def beat(self) -> None:
        """One heartbeat (raises :class:`ClusterError` if etcd cannot be reached)."""
        if self.lease is not None and not self.etcd.keepalive(self.lease):
            log.warning("cluster: lease %s expired: registering again", self.lease)
            self.lease = None
        if self.lease is None:
            lease = self.etcd.grant(self.config.ttl)
            self.etcd.put(self.key("alive", self.config.node), {"lease": lease}, lease)
            self.lease = lease
        record = self.record()
        if record != self._written:
            self.etcd.put(self.key("nodes", self.config.node), record)
            self._written = record
        self.refresh()
        self.beats += 1
        if self.after_beat is not None:
            self.after_beat()

    def refresh(self) -> list[NodeState]:
        records = self.etcd.get_prefix(self.key("nodes"))
        alive = {key.rsplit("/", 1)[-1] for key in self.etcd.get_prefix(self.key("alive"))}
        view: list[NodeState] = []
        for value in records.values():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                view.append(NodeState.of(value, value.get("name") in alive))
        view.sort(key=lambda n: n.name)
        with self._lock:
            self._view = view
            self.last_read = time.monotonic()
        return view

    def fresh(self) -> bool:
        """Whether the view was read from etcd within the lease's ``ttl``: placement trusts
        it; an older one (etcd unreachable) may list dead nodes alive and live ones dead."""
        with self._lock:
            last = self.last_read
        return last is not None and time.monotonic() - last <= self.config.ttl

    def nodes(self) -> list[NodeState]:
        with self._lock:
            return list(self._view)

    def _run(self) -> None:
        while not self._stop.wait(self.config.heartbeat):
            try:
                self.beat()
            except ClusterError as exc:
                self.failures += 1
                log.warning("cluster: heartbeat failed: %s", exc)

    def start(self) -> None:
        try:
            self.beat()
        except ClusterError as exc:  # keeps trying in the background
            self.failures += 1
            log.warning("cluster: first heartbeat failed: %s", exc)
        self._thread = threading.Thread(target=self._run, name="cluster-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and revoke the lease: the node is seen as down at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.lease is not None:
            with contextlib.suppress(ClusterError):
                self.etcd.revoke(self.lease)
            self.lease = None
