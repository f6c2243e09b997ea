"""The map layouts against the compiled program itself: its BTF (clang -g) says each struct's
size and every member's offset and size as the compiler laid them out. The unit test checks the
Python formats against :mod:`~fluidedge.tof.fastpath.cdefs`' reading of the C source; this one
checks both against the object the kernel loads, so a misreading of C's layout rules by the
parser fails here instead of corrupting a map."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from fluidedge.tof.fastpath import build, cdefs
from fluidedge.tof.fastpath import layout as L

_QUALIFIERS = {"TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"}


def _btf_types(obj: Path) -> dict[int, dict[str, Any]]:
    dumped = subprocess.run(
        ["bpftool", "-j", "btf", "dump", "file", str(obj)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {t["id"]: t for t in json.loads(dumped.stdout)["types"]}


def _size(types: dict[int, dict[str, Any]], type_id: int) -> int:
    t = types[type_id]
    while t["kind"] in _QUALIFIERS:
        t = types[t["type_id"]]
    if t["kind"] == "ARRAY":
        return int(t["nr_elems"]) * _size(types, t["type_id"])
    return int(t["size"])  # INT, STRUCT, UNION, ENUM


def _btf_fields(types: dict[int, dict[str, Any]], name: str) -> tuple[int, list[tuple[int, int]]]:
    (struct,) = [t for t in types.values() if t["kind"] == "STRUCT" and t.get("name") == name]
    fields = []
    for member in struct["members"]:
        assert member["bits_offset"] % 8 == 0, (name, member)  # no bit fields in map values
        fields.append((member["bits_offset"] // 8, _size(types, member["type_id"])))
    return int(struct["size"]), fields


def _pairs(fields: list[cdefs.Field]) -> list[tuple[int, int]]:
    return [(f.offset, f.size) for f in fields]


def test_every_layout_matches_the_compiled_programs_btf(tmp_path: Path) -> None:
    types = _btf_types(build.object_path(cache=tmp_path))
    for name, fmt in L.STRUCTS.items():
        btf_size, btf_fields = _btf_fields(types, name)
        py_size, py_fields = cdefs.python_fields(fmt)
        c_size, c_fields = cdefs.struct_fields(name)
        assert (py_size, c_size) == (btf_size, btf_size), name
        # The compiler's members (offset, size), one per C declaration, in order.
        assert _pairs(py_fields) == btf_fields, name
        assert _pairs(c_fields) == btf_fields, name
    for name, size in (("tunnel_key", L.TUNNEL_KEY_SIZE), ("bearer_key", L.BEARER_KEY_SIZE)):
        assert _btf_fields(types, name)[0] == size, name
