"""Every hash map of our eBPF programs that userspace replaces entries of is read safely.

A preallocated hash map (the kernel's default) recycles a replaced element at once: it becomes
the CPU's spare element, and the next replacement in the same map is written into it. A packet
that looked the old entry up just before and still reads it then reads another key's value
(the chains' program: another port's rules, another hop's members: a function skipped, or a
datagram dropped at a leg not yet steering, as one CI run showed). ``BPF_F_NO_PREALLOC`` frees
the old element after an RCU grace period, so a reader sees the old entry or the new, never
another. The rule is checked on the sources, so a map added later cannot forget it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SOURCES = sorted((Path(__file__).resolve().parents[2] / "src").rglob("*.bpf.c"))
_MAP = re.compile(r"struct\s*\{(?P<body>[^{}]*)\}\s*(?P<name>\w+)\s+SEC\(\"\.maps\"\)", re.S)


def maps(text: str) -> dict[str, str]:
    """Map name -> its definition's body, from a BPF C source (BTF-style definitions)."""
    return {m["name"]: m["body"] for m in _MAP.finditer(text)}


def test_the_sources_are_found_and_parsed() -> None:
    names = {p.name for p in SOURCES}
    assert {"chains.bpf.c", "fastpath.bpf.c"} <= names
    found = {p.name: maps(p.read_text()) for p in SOURCES}
    assert {"ports", "groups", "rules", "pins"} <= found["chains.bpf.c"].keys()
    assert {"tunnels", "services", "intercepts"} <= found["fastpath.bpf.c"].keys()


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_hash_maps_are_not_preallocated(source: Path) -> None:
    hashes = {
        name: body
        for name, body in maps(source.read_text()).items()
        if re.search(r"BPF_MAP_TYPE_(PERCPU_)?HASH\b", body)
    }
    preallocated = sorted(n for n, body in hashes.items() if "BPF_F_NO_PREALLOC" not in body)
    assert preallocated == [], f"{source.name}: preallocated hash maps {preallocated}"


def test_the_check_tells_a_preallocated_map() -> None:
    text = (
        "struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8);\n"
        '\t __type(key, __u32); __type(value, __u32); } groups SEC(".maps");\n'
        "struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 8);\n"
        '\t __type(key, __u32); __type(value, __u32); } pins SEC(".maps");\n'
    )
    found = maps(text)
    assert set(found) == {"groups", "pins"}
    assert "BPF_F_NO_PREALLOC" not in found["groups"]
    assert re.search(r"BPF_MAP_TYPE_(PERCPU_)?HASH\b", found["groups"])
    assert not re.search(r"BPF_MAP_TYPE_(PERCPU_)?HASH\b", found["pins"])
