"""Cache Allocation Technology (seed §7): classes of service over the kernel's resctrl.

A class of service (CoS) is a resctrl control group: capacity bitmasks per cache id (L3, L2),
memory-bandwidth percentages (MBA) where the host has them, and the tasks or CPUs it governs.
The package is split like the rest of fluidedge:

- :mod:`.layout`: pure functions. The host's capabilities as read from ``info/``, kernel-like
  validation of masks and layouts, the seed's CoS models laid out on the host's ``cbm_mask``,
  schemata text in and out.
- :mod:`.fs`: the seam. :class:`~.fs.ResctrlFS` is what the manager needs from the kernel
  (read, write, mkdir, rmdir, list); :class:`~.fs.RealResctrlFS` does plain file I/O under a
  mount point. The tests put a kernel emulation behind the same seam.
- :mod:`.manager`: classes, layouts applied all-or-none with rollback, instances and CPU sets
  assigned to classes, monitoring; declared state in the store, restored at start.
- :mod:`.api`, :mod:`.cli`, :mod:`.part`: REST under ``/v1/cat``, ``fluidedge cat ...``, and
  the daemon part (``[cat]`` table).
"""

# The public face: the modules other packages may import from (tests/unit/test_layers.py).
__all__ = [
    "fs",
    "layout",
    "manager",
    "models",
    "part",
    "tasks",
]
