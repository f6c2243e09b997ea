"""CPU lists in the kernel's syntax (``0-3,6``), read and written one way everywhere.

The syntax of ``cpuset.cpus``, ``/sys/devices/system/cpu/online`` and resctrl's ``cpus_list``,
which the API (CAT classes), the configuration (``[instances] cpus``) and the kernel's own
files all use. One parser, strict for every caller: it checks each range before it expands
it (``0-999999999`` is refused, not a billion-element list), refuses a range written
backwards (a lax parser read ``3-1`` as no CPU at all) and any digit but ASCII ones (``int``
reads ``"١٢"`` as 12). The result is sorted and unique.
"""

from __future__ import annotations

from collections.abc import Iterable

from fluidedge.core.fields import decimal

# What the parser takes, as a pattern: ranges and single CPUs, comma-separated; the empty list
# is no CPU. A range written backwards or a CPU no host has is beyond what a pattern can say.
CPU_LIST_PATTERN = r"^([0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*)?$"
# The highest CPU number taken: the kernel's NR_CPUS is at most 8192 (CONFIG_NR_CPUS of the
# distributions' largest builds, Debian's amd64 included), so no host's file names a higher one.
MAX_CPU = 8191


class CpuListError(ValueError):
    """Not a CPU list. ``unprocessable``: well-formed, but no CPU set (a range written
    backwards, a CPU beyond :data:`MAX_CPU`), where a request's schema already took it."""

    def __init__(self, reason: str, *, unprocessable: bool = False) -> None:
        super().__init__(reason)
        self.unprocessable = unprocessable


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """The CPUs of ``text`` (:data:`CPU_LIST_PATTERN`; a trailing newline, as the kernel's
    files end, is fine), sorted and unique; :class:`CpuListError` with the reason."""
    listed = text.strip()
    cpus: set[int] = set()
    for part in listed.split(",") if listed else ():
        low_text, dash, high_text = part.partition("-")
        low, high = _number(low_text), _number(high_text if dash else low_text)
        if low is None or high is None:
            raise CpuListError(f"invalid CPU list {listed!r} (want e.g. '0-3,6')")
        if max(low, high) > MAX_CPU:
            raise CpuListError(
                f"{part!r} in {listed!r} names a CPU beyond any host's (at most {MAX_CPU})",
                unprocessable=True,
            )
        if low > high:
            raise CpuListError(
                f"the range {part!r} runs backwards (want low-high)", unprocessable=True
            )
        cpus.update(range(low, high + 1))
    return tuple(sorted(cpus))


def _number(text: str) -> int | None:
    """ASCII digits as a number (more than 9 of them: beyond any CPU), else None."""
    if len(text) > 9 and text.isascii() and text.isdigit():
        return MAX_CPU + 1
    return decimal(text)


def cpu_list_text(cpus: Iterable[int]) -> str:
    """The kernel's syntax for ``cpus`` (sorted, comma-separated)."""
    return ",".join(str(cpu) for cpu in sorted(cpus))
