"""Thin adapters over the kernel and system tools: processes, namespaces, netlink, eBPF.

All I/O that touches the host lives under this package or in a part's own adapter module;
everything else in fluidedge is pure and testable without root.
"""

# The public face: the modules other packages may import from (tests/unit/test_layers.py).
__all__ = [
    "addrs",
    "bpfbuild",
    "capabilities",
    "heldcalls",
    "libbpf",
    "libc",
    "links",
    "linkstats",
    "netlink",
    "netns",
    "packet",
    "proc",
    "procfs",
    "sockbuf",
    "tc",
]
