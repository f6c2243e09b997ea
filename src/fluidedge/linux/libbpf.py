"""A thin ctypes binding to the system libbpf (Debian ``libbpf1``): load, pin, map access.

WHY ctypes and not a Python eBPF toolkit: libbpf is the kernel's own loader (BTF maps, CO-RE
relocations), already on every Debian host with ``libbpf-dev``, and fluidedge's eBPF programs
(the TOF's fast path and fail-open guard, the chains') need only a dozen calls. Every call
checks its result and raises :class:`BpfError` with ``errno`` text.

WHY here, under :mod:`fluidedge.linux`: the parts that load programs sit side by side in one
layer and may not import one another (tests/unit/test_layers.py); the binding is theirs alike.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from fluidedge.errors import SystemFailure

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2


class BpfError(SystemFailure):
    """A libbpf call failed (load, pin, map update...); ``errno`` says why (0 if unknown)."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


def _load_lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise BpfError(f"libbpf is not installed ({exc}); run scripts/setup") from exc
    vp, cp, i, u32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32
    sigs: dict[str, tuple[object, list[object]]] = {
        "bpf_object__open_file": (vp, [cp, vp]),
        "bpf_object__load": (i, [vp]),
        "bpf_object__close": (None, [vp]),
        "bpf_object__find_map_by_name": (vp, [vp, cp]),
        "bpf_object__find_program_by_name": (vp, [vp, cp]),
        "bpf_map__fd": (i, [vp]),
        "bpf_map__set_max_entries": (i, [vp, u32]),
        "bpf_program__fd": (i, [vp]),
        "bpf_obj_pin": (i, [i, cp]),
        "bpf_map_update_elem": (i, [i, vp, vp, ctypes.c_uint64]),
        "bpf_map_lookup_elem": (i, [i, vp, vp]),
        "bpf_map_delete_elem": (i, [i, vp]),
        "bpf_map_get_next_key": (i, [i, vp, vp]),
        "bpf_map_lookup_batch": (i, [i, vp, vp, vp, vp, ctypes.POINTER(u32), vp]),
        "libbpf_get_error": (ctypes.c_long, [vp]),
        "libbpf_num_possible_cpus": (i, []),
        "bpf_prog_test_run_opts": (i, [i, vp]),
    }
    for fname, (restype, argtypes) in sigs.items():
        fn = getattr(lib, fname)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    global _lib  # noqa: PLW0603 - one process-wide handle, loaded on first use
    if _lib is None:
        _lib = _load_lib()
    return _lib


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = -rc if rc != -1 else ctypes.get_errno()
        raise BpfError(f"{what}: {os.strerror(err)}", err)
    return rc


def possible_cpus() -> int:
    return _check(lib().libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")


class BpfObject:
    """A compiled eBPF object file opened, sized and loaded into the kernel."""

    def __init__(self, path: Path, max_entries: dict[str, int] | None = None) -> None:
        handle = lib().bpf_object__open_file(str(path).encode(), None)
        if not handle or lib().libbpf_get_error(handle):
            raise BpfError(f"cannot open eBPF object {path}")
        self._obj: int | None = handle
        try:
            for name, size in (max_entries or {}).items():
                _check(lib().bpf_map__set_max_entries(self._map(name), size), f"size map {name}")
            _check(lib().bpf_object__load(handle), f"load eBPF object {path}")
        except BaseException:
            self.close()
            raise

    def _map(self, name: str) -> int:
        ptr = lib().bpf_object__find_map_by_name(self._obj, name.encode())
        if not ptr:
            raise BpfError(f"eBPF object has no map {name!r}")
        return int(ptr)

    def map_fd(self, name: str) -> int:
        return _check(lib().bpf_map__fd(self._map(name)), f"fd of map {name}")

    def prog_fd(self, name: str) -> int:
        ptr = lib().bpf_object__find_program_by_name(self._obj, name.encode())
        if not ptr:
            raise BpfError(f"eBPF object has no program {name!r}")
        return _check(lib().bpf_program__fd(ptr), f"fd of program {name}")

    def close(self) -> None:
        """Release our references (attached programs and their maps stay alive)."""
        if self._obj is not None:
            lib().bpf_object__close(self._obj)
            self._obj = None


class _TestRunOpts(ctypes.Structure):
    """libbpf's ``struct bpf_test_run_opts`` (bpf.h)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


def prog_test_run(prog_fd: int, data: bytes, ctx: bytes = b"") -> tuple[int, int]:
    """Run a loaded program once on ``data`` (``BPF_PROG_TEST_RUN``; a tc program gets a
    fresh skb of ``data``, ``ctx`` a ``struct __sk_buff`` prefix, e.g. its ingress ifindex):
    ``(return value, duration ns)``. Benches measure a program's own cost with it; the skb
    is thrown away (a redirect is not carried out). Runs in the caller's network namespace."""
    data_in = ctypes.create_string_buffer(data, len(data))
    ctx_in = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
    opts = _TestRunOpts(
        sz=ctypes.sizeof(_TestRunOpts),
        data_in=ctypes.cast(data_in, ctypes.c_void_p),
        data_size_in=len(data),
        ctx_in=ctypes.cast(ctx_in, ctypes.c_void_p) if ctx_in is not None else None,
        ctx_size_in=len(ctx),
        repeat=1,
    )
    _check(lib().bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts)), "BPF_PROG_TEST_RUN")
    return int(opts.retval), int(opts.duration)


def pin(fd: int, path: Path) -> None:
    _check(lib().bpf_obj_pin(fd, str(path).encode()), f"pin to {path}")


class BpfMap:
    """Fixed-size key/value access to one map by file descriptor."""

    def __init__(self, fd: int, key_size: int, value_size: int, *, percpu: bool = False) -> None:
        self.fd = fd
        self.key_size = key_size
        self.value_size = value_size
        self.cpus = possible_cpus() if percpu else 1
        # Per-CPU values are each rounded up to 8 bytes by the kernel.
        self._stride = (value_size + 7) & ~7 if percpu else value_size

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        if len(key) != self.key_size or len(value) != self.value_size * self.cpus:
            raise BpfError(f"map {self.fd}: wrong key/value size")
        k = ctypes.create_string_buffer(key, self.key_size)
        v = ctypes.create_string_buffer(value, len(value))
        _check(lib().bpf_map_update_elem(self.fd, k, v, flags), "map update")

    def lookup(self, key: bytes) -> bytes | None:
        k = ctypes.create_string_buffer(key, self.key_size)
        v = ctypes.create_string_buffer(self._stride * self.cpus)
        if lib().bpf_map_lookup_elem(self.fd, k, v) != 0:
            return None
        return v.raw

    def lookup_percpu(self, key: bytes) -> list[bytes]:
        raw = self.lookup(key)
        if raw is None:
            return []
        s = self._stride
        return [raw[i * s : i * s + self.value_size] for i in range(self.cpus)]

    def delete(self, key: bytes) -> bool:
        k = ctypes.create_string_buffer(key, self.key_size)
        return bool(lib().bpf_map_delete_elem(self.fd, k) == 0)

    def keys(self) -> list[bytes]:
        out: list[bytes] = []
        cur = ctypes.create_string_buffer(self.key_size)
        nxt = ctypes.create_string_buffer(self.key_size)
        prev = None
        while lib().bpf_map_get_next_key(self.fd, prev, nxt) == 0:
            out.append(nxt.raw)
            ctypes.memmove(cur, nxt, self.key_size)
            prev = cur
        return out

    def lookup_all(self, chunk: int = 8192) -> dict[bytes, bytes]:
        """Every entry, read ``chunk`` at a time (``BPF_MAP_LOOKUP_BATCH``: a few system
        calls for the whole map instead of one per key). Values as :meth:`lookup` returns them.
        """
        out: dict[bytes, bytes] = {}
        ks, vs = self.key_size, self._stride * self.cpus
        for n, kraw, vraw in self.lookup_batches(chunk):
            for i in range(n):
                out[kraw[i * ks : (i + 1) * ks]] = vraw[i * vs : (i + 1) * vs]
        return out

    def lookup_batches(self, chunk: int = 8192) -> Iterator[tuple[int, bytes, bytes]]:
        """The map ``chunk`` entries at a time (``BPF_MAP_LOOKUP_BATCH``): ``(n, keys,
        values)``, the ``n`` keys and values packed back to back (values as :meth:`lookup`
        returns them). A caller may do other work between two chunks (the fast path's fold
        applies each chunk under its lock, and reads the next one without it); entries
        written meanwhile may or may not be seen, none is seen twice.
        """
        value_len = self._stride * self.cpus
        keys = ctypes.create_string_buffer(self.key_size * chunk)
        values = ctypes.create_string_buffer(value_len * chunk)
        cursor_in = ctypes.create_string_buffer(max(self.key_size, 8))
        cursor_out = ctypes.create_string_buffer(max(self.key_size, 8))
        count = ctypes.c_uint32()
        first = True
        while True:
            count.value = chunk
            rc = lib().bpf_map_lookup_batch(
                self.fd, None if first else cursor_in, cursor_out, keys, values, count, None
            )
            err = ctypes.get_errno() if rc < 0 else 0
            n = count.value
            if n:
                yield n, keys.raw[: n * self.key_size], values.raw[: n * value_len]
            if rc < 0:
                if err == errno.ENOENT or (rc == -errno.ENOENT):
                    return
                raise BpfError(f"map batch lookup: {os.strerror(err or -rc)}", err or -rc)
            ctypes.memmove(cursor_in, cursor_out, len(cursor_out))
            first = False

    def items(self) -> list[tuple[bytes, bytes]]:
        rows = []
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                rows.append((key, value))
        return rows
