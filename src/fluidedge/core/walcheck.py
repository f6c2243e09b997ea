"""A sans-I/O check of an SQLite write-ahead log: would opening it silently lose commits?

SQLite reads a WAL up to the first frame whose salt or checksum does not match and ignores the
rest by design: that is how a transaction torn by a crash is discarded. The same rule makes
damage silent: a few KB of garbage in the middle of a WAL make every later *committed*
transaction vanish on the next open (deleted rows come back, new ones disappear), and an
invalid header makes SQLite ignore the whole log. This module walks the log the way SQLite does
(https://www.sqlite.org/fileformat.html#the_write_ahead_log) and reports damage that SQLite
would hide:

- a header with a wrong magic, version or checksum while the file holds frames;
- a broken frame (salt or checksum) followed by commit frames of the *same* log (matching
  salts), which SQLite would drop.

A broken frame with no committed frame of the current log after it is what a crash during the
last, unacknowledged transaction leaves; it is not reported (SQLite discards it, correctly).
Frames with other salts are a previous generation of the log (after a checkpoint restart) and
are normal.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Header (32 bytes, big-endian): magic, format version, page size, checkpoint sequence,
# salt-1, salt-2, checksum-1, checksum-2 (over the first 24 bytes).
_HEADER = struct.Struct(">IIIIIIII")
HEADER_SIZE = _HEADER.size
# Frame header (24 bytes): page number, database size in pages after commit (0 unless this
# frame ends a transaction), salt-1, salt-2, checksum-1, checksum-2 (cumulative).
_FRAME = struct.Struct(">IIIIII")
FRAME_HEADER_SIZE = _FRAME.size
MAGIC_LE = 0x377F0682  # checksums computed on little-endian words
MAGIC_BE = 0x377F0683  # checksums computed on big-endian words
FORMAT_VERSION = 3007000
_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class WalReport:
    """What a WAL holds: valid frames and commits, and the damage SQLite would hide (if any)."""

    valid_frames: int
    valid_commits: int
    problem: str | None = None


def _checksum(data: bytes, big_endian: bool, s0: int, s1: int) -> tuple[int, int]:
    """SQLite's WAL checksum (fileformat §4.3): over 32-bit words, pairwise, seeded."""
    words = iter(struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data))
    for first, second in zip(words, words, strict=True):
        s0 = (s0 + first + s1) & _MASK
        s1 = (s1 + second + s0) & _MASK
    return s0, s1


def check_wal(data: bytes) -> WalReport:
    """Walk a WAL file's bytes; ``problem`` says what committed data SQLite would drop."""
    if len(data) == 0:
        return WalReport(0, 0)
    if len(data) < HEADER_SIZE:
        # A header torn while a checkpointed log restarted: nothing in it to lose.
        return WalReport(0, 0)
    magic, version, page_size, _seq, salt1, salt2, ck1, ck2 = _HEADER.unpack_from(data)
    frame_size = FRAME_HEADER_SIZE + page_size
    holds_frames = len(data) >= HEADER_SIZE + FRAME_HEADER_SIZE + 512
    if magic not in (MAGIC_LE, MAGIC_BE):
        return WalReport(0, 0, "bad magic in the WAL header" if holds_frames else None)
    big_endian = magic == MAGIC_BE
    valid_size = page_size >= 512 and page_size <= 65536 and page_size & (page_size - 1) == 0
    if version != FORMAT_VERSION or not valid_size:
        return WalReport(0, 0, "invalid WAL header (version or page size)")
    s0, s1 = _checksum(data[:24], big_endian, 0, 0)
    if (s0, s1) != (ck1, ck2):
        return WalReport(0, 0, "WAL header checksum mismatch" if holds_frames else None)
    frames = commits = 0
    offset = HEADER_SIZE
    while offset + frame_size <= len(data):
        page, db_size, fsalt1, fsalt2, fck1, fck2 = _FRAME.unpack_from(data, offset)
        if (fsalt1, fsalt2) != (salt1, salt2):
            break
        n0, n1 = _checksum(data[offset : offset + 8], big_endian, s0, s1)
        n0, n1 = _checksum(data[offset + 24 : offset + frame_size], big_endian, n0, n1)
        if (n0, n1) != (fck1, fck2) or page == 0:
            break
        s0, s1 = n0, n1
        frames += 1
        if db_size:
            commits += 1
        offset += frame_size
    # Committed frames of this log beyond the break would be dropped by SQLite.
    lost = 0
    scan = offset + frame_size
    while scan + frame_size <= len(data):
        _page, db_size, fsalt1, fsalt2, _c1, _c2 = _FRAME.unpack_from(data, scan)
        if (fsalt1, fsalt2) == (salt1, salt2) and db_size:
            lost += 1
        scan += frame_size
    problem = None
    if lost:
        problem = (
            f"WAL frame {frames} (byte {offset}) is damaged and {lost} committed "
            f"transaction(s) after it would be lost"
        )
    return WalReport(frames, commits, problem)
