"""The parts the daemon knows, by config table name.

A part is enabled when its table is present in the daemon config (``[tof]``, ``[instances]``...).
Each factory is imported inside its loader so that a daemon without a part never imports its
dependencies; the imports are still plain ``import`` statements, so the package import graph
(``tests/unit/test_layers.py``) sees that the daemon sits above the parts it hosts.
"""

from __future__ import annotations

from collections.abc import Callable

from fluidedge.core.errors import ConfigError
from fluidedge.core.part import PartFactory


def _instances() -> PartFactory:
    from fluidedge.instances.part import create_part  # noqa: PLC0415 - only when enabled

    return create_part


def _secgroups() -> PartFactory:
    from fluidedge.secgroups.part import create_part  # noqa: PLC0415 - only when enabled

    return create_part


def _chains() -> PartFactory:
    from fluidedge.chains.part import create_part  # noqa: PLC0415 - only when enabled

    return create_part


def _cat() -> PartFactory:
    from fluidedge.cat.part import create_part  # noqa: PLC0415 - only when enabled

    return create_part


def _cluster() -> PartFactory:
    from fluidedge.cluster.part import create_part  # noqa: PLC0415 - only when enabled

    return create_part


def _tof() -> PartFactory:
    from fluidedge.tof.part import create_part  # noqa: PLC0415 - only when enabled

    return create_part


def _mec() -> PartFactory:
    from fluidedge.mec.part import create_part  # noqa: PLC0415 - only when enabled

    return create_part


# name -> loader of its PartFactory. Order is start order (stop is the reverse).
PART_FACTORIES: dict[str, Callable[[], PartFactory]] = {
    "instances": _instances,
    "cluster": _cluster,  # after the instance manager it places for and reports
    "secgroups": _secgroups,
    "chains": _chains,
    "cat": _cat,
    "tof": _tof,
    "mec": _mec,  # after the TOF its traffic rules drive
}


def load_factory(name: str) -> PartFactory:
    """Import and return the factory of part ``name``."""
    loader = PART_FACTORIES.get(name)
    if loader is None:
        known = ", ".join(sorted(PART_FACTORIES))
        raise ConfigError(f"config: unknown table [{name}] (known parts: {known})")
    return loader()
