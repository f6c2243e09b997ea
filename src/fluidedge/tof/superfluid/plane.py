"""The control calls a TOF backend offers the superfluid controller (thread-safe).

The controller runs in its own threads; the data plane in its thread. Every call takes the
backend's lock (the one held per packet batch), so a binding changes between two batches,
never in the middle of one, and the packets a ``ready`` releases are sent before any later
packet of the same flow is processed. Mixed into every backend: userspace and none run the
pipeline on every frame; the fast path's kernel punts on-demand services to its agent (they
have no application IP in its service map) until a binding is ready, then offloads them to its
instance itself (its ``ondemand`` map, kept through the hooks below; docs/superfluid.md).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from fluidedge.tof.pipeline import Action, Pipeline
from fluidedge.tof.superfluid.table import DemandSink, Key, Waker


class OnDemandPlane(Protocol):
    """What the controller needs from a backend."""

    def set_demand_sink(self, sink: DemandSink | None) -> None: ...

    def set_waker(self, waker: Waker | None) -> None: ...

    def ondemand_ready(self, service: str, ue: bytes, app_ip: bytes) -> float | None: ...

    def ondemand_park(self, service: str, ue: bytes, idle_since: float | None = None) -> bool: ...

    def ondemand_frozen(self, service: str, ue: bytes) -> bool: ...

    def ondemand_forget(self, service: str, ue: bytes, *, force: bool = False) -> bool: ...

    def ondemand_refuse(self, service: str, ue: bytes, reason: str) -> int: ...

    def ondemand_restore(self, service: str, ue: bytes, app_ip: bytes, *, paused: bool) -> None: ...

    def ondemand_activity(self) -> dict[Key, tuple[str, float]]: ...


class OnDemandControl:
    """Implementation over ``self.pipeline`` guarded by ``self._lock``.

    Three hooks, no-ops here, let a backend with a kernel projection of the bindings (the fast
    path) keep it: :meth:`_ondemand_sync` after every change, :meth:`_ondemand_fold` to take
    the kernel's activity into the bindings before they are judged idle, and
    :meth:`_ondemand_slipped` to tell a packet the kernel forwarded after a park.
    """

    pipeline: Pipeline
    _lock: threading.Lock

    def _ondemand_sync(self) -> None:
        """Project the bindings that changed (under the lock)."""

    def _ondemand_fold(self, key: Key | None) -> None:
        """Fold the activity other paths saw into binding ``key`` (None: every binding)."""

    def _ondemand_slipped(self, key: Key, since: float) -> bool:
        """Whether a packet of binding ``key`` reached its instance after ``since`` by a path
        the binding's table did not see."""
        return False

    def _send_released(self, actions: list[Action]) -> None:
        """Send what a release produced: the data plane's own sender when it has one
        (:class:`~fluidedge.tof.dataplane_common.DataPlaneBase`), else nowhere (``none``)."""
        send = getattr(self, "_send_all", None)
        if send is not None:
            send(actions, None)

    def set_demand_sink(self, sink: DemandSink | None) -> None:
        with self._lock:
            self.pipeline.ondemand.sink = sink

    def set_waker(self, waker: Waker | None) -> None:
        with self._lock:
            self.pipeline.ondemand.waker = waker

    def ondemand_ready(self, service: str, ue: bytes, app_ip: bytes) -> float | None:
        """Point (service, ue) at ``app_ip`` and send what was queued for it; returns how long
        the oldest queued packet waited (None when nothing was queued). The queued packets
        are sent before any other path may carry the binding's packets."""
        with self._lock:
            actions = self.pipeline.ondemand_ready(service, ue, app_ip, time.monotonic())
            self._send_released(actions)
            self._ondemand_sync()
            return self.pipeline.ondemand_waited

    def ondemand_park(self, service: str, ue: bytes, idle_since: float | None = None) -> bool:
        with self._lock:
            table = self.pipeline.ondemand
            self._ondemand_fold(table.key(service, ue))
            parked = table.park(service, ue, idle_since)
            self._ondemand_sync()
            return parked

    def ondemand_frozen(self, service: str, ue: bytes) -> bool:
        """The instance of a parked binding is frozen. A packet another path delivered to it
        after the park (``_ondemand_slipped``) wakes it at once: a frozen instance must never
        hold a packet nobody will resume it for."""
        with self._lock:
            table = self.pipeline.ondemand
            if not table.frozen(service, ue):
                return False
            key = table.key(service, ue)
            binding = table.bindings.get(key)
            if binding is not None and self._ondemand_slipped(key, binding.parked_since):
                table.wake(service, ue, time.monotonic())
                self._ondemand_sync()
            return True

    def ondemand_forget(self, service: str, ue: bytes, *, force: bool = False) -> bool:
        with self._lock:
            forgotten = self.pipeline.ondemand_forget(service, ue, force=force)
            self._ondemand_sync()
            return forgotten

    def ondemand_refuse(self, service: str, ue: bytes, reason: str) -> int:
        with self._lock:
            n = self.pipeline.ondemand.refuse(service, ue, reason)
            self._ondemand_sync()
            return n

    def ondemand_restore(self, service: str, ue: bytes, app_ip: bytes, *, paused: bool) -> None:
        with self._lock:
            self.pipeline.ondemand.restore(service, ue, app_ip, paused=paused, now=time.monotonic())
            self._ondemand_sync()

    def ondemand_activity(self) -> dict[Key, tuple[str, float]]:
        with self._lock:
            self._ondemand_fold(None)
            return self.pipeline.ondemand.activity()
