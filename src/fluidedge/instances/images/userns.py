"""User-namespace id ranges: who container root is on the host. Pure.

Design (runc 1.1.5 has no idmapped-mount option, crun 1.8 neither as used here):

- Each *shell* (and so each instance: a shell becomes one) gets its own range of
  :data:`RANGE` host uids/gids, ``base + slot * RANGE``, slot >= 1: container root is an
  unprivileged host uid no other instance shares, so a process escaping one instance owns
  nothing of another's (its files, its signals, its ``/proc``).
- Images are unpacked once with their ids shifted into slot 0, the *image range*, which no
  instance maps. Inside an instance image files therefore show as the overflow id (65534):
  readable and executable as their "other" bits say, never writable, never chown-able, even by
  the instance's root (its capabilities do not cover unmapped owners). One copy serves every
  instance, so the page cache stays shared and a warm shell costs no copy; the per-instance
  alternative (a chown'd copy per range) would cost a full copy per shell.
- What the instance must read and write is owned by its own range: its assignment directory
  (``/.fe``), its overlay upper (the mount points runc creates), its tmpfs mounts.

Per instance rather than per tenant: this tree has no tenants yet, and per instance is the
stronger isolation of the two (tenants' instances are also each other's neighbours).
"""

from __future__ import annotations

from collections.abc import Iterable

RANGE = 65536
DEFAULT_BASE = 1 << 30  # far above login users and the usual /etc/subuid allocations
MAX_SLOTS = ((1 << 31) - DEFAULT_BASE) // RANGE - 1


def image_base(base: int) -> int:
    """Host id of image uid 0 (slot 0)."""
    return base


def slot_base(base: int, slot: int) -> int:
    """Host id of container root in ``slot`` (>= 1)."""
    if slot < 1:
        raise ValueError("slot 0 is the image range")
    return base + slot * RANGE


def slot_of(base: int, host_id: int) -> int:
    """The slot a host id of container root belongs to."""
    return (host_id - base) // RANGE


def allocate(used: Iterable[int], limit: int = MAX_SLOTS) -> int:
    """The lowest free slot (>= 1) not in ``used``."""
    taken = set(used)
    for slot in range(1, limit + 1):
        if slot not in taken:
            return slot
    raise ValueError(f"all {limit} user-namespace ranges are in use")


def mappings(host_base: int) -> list[dict[str, int]]:
    """OCI ``linux.uidMappings``/``gidMappings`` for container root at ``host_base``."""
    return [{"containerID": 0, "hostID": host_base, "size": RANGE}]
