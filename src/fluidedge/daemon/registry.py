"""The parts the daemon knows, by config table name.

A part is enabled when its table is present in the daemon config (``[tof]``, ``[instances]``...).
Factories are imported lazily so that a daemon without a part never imports its dependencies.
"""

from __future__ import annotations

import importlib
from typing import cast

from fluidedge.daemon.errors import ConfigError
from fluidedge.daemon.part import PartFactory

# name -> "module:function" of a PartFactory. Order is start order (stop is the reverse).
PART_FACTORIES: dict[str, str] = {
    "instances": "fluidedge.instances.part:create_part",
    "secgroups": "fluidedge.secgroups.part:create_part",
    "cat": "fluidedge.cat.part:create_part",
    "tof": "fluidedge.tof.part:create_part",
}


def load_factory(name: str) -> PartFactory:
    """Import and return the factory of part ``name``."""
    target = PART_FACTORIES.get(name)
    if target is None:
        known = ", ".join(sorted(PART_FACTORIES))
        raise ConfigError(f"config: unknown table [{name}] (known parts: {known})")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return cast(PartFactory, getattr(module, attr))
