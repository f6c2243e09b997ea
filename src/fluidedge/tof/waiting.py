"""What the TOF serves while its data plane waits for the host (:mod:`fluidedge.tof.presence`).

The catalog stays the truth: services are declared, changed and removed as usual, stored, and
pushed into the data plane when it starts. Meanwhile nothing crosses the TOF (there are no
ports), so there are no tunnels and no counters; ``/stats`` says ``"dataplane": "waiting: ..."``
with the reason, as it says ``"running"`` or why the data plane died otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fluidedge.tof.config import TofConfig
from fluidedge.tof.models import Service
from fluidedge.tof.pipeline import Pipeline


class WaitingPlane:
    """A :class:`~fluidedge.tof.backend.Backend` with no ports: the declared services only.

    It offers none of the optional calls (on-demand control, mirrors, accounting): what needs
    them waits with the data plane.
    """

    def __init__(self, name: str, config: TofConfig, reason: Callable[[], str | None]) -> None:
        self.name = name
        self.reason = reason  # why it waits, as the part's wait says it now
        self._pipeline = Pipeline(config)  # the stats' shape, and the services' table

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def apply(self, services: Mapping[str, Service]) -> None:
        self._pipeline.set_services(services)

    def tunnels(self) -> list[dict[str, object]]:
        return []

    def stats(self) -> dict[str, object]:
        return {**self._pipeline.stats(), "dataplane": f"waiting: {self.reason()}"}

    def events(self) -> list[dict[str, object]]:
        return []

    def purge(self) -> int:
        return 0
