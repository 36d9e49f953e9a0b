"""`OffsetIndex`: a segment's sparse offset -> file position index (the `.index` file).

Owns the entries of one segment: (relative offset int32, position int32), big-endian, 8 bytes
each, Kafka's format. An entry (L, P) says the batch starting at byte P of the `.log` has last
offset base + L; entries are added one per `index_interval_bytes` of appended batches, so both
columns strictly increase. A floor lookup gives a position from which a forward scan of batch
headers finds any offset.

The index is derived data: new entries are appended to the file as they are added but never
fsynced on the append path (the flush does), and recovery rebuilds it from the segment when
the file is missing or fails the sanity check (`check`). Entries load lazily: opening a
segment reads only the last entry; the first lookup reads the file.

Never does I/O except through the injected `LogFileSystem`; never scans the segment itself.
"""

from __future__ import annotations

import contextlib
import struct
import sys
from array import array
from bisect import bisect_right

from zoolog.logstore.files import LogFileSystem

ENTRY = struct.Struct(">ii")
ENTRY_BYTES = ENTRY.size
_SWAP = sys.byteorder == "little"


def _ints(data: bytes) -> array[int]:
    values = array("i", data)
    if _SWAP:
        values.byteswap()
    return values


class OffsetIndex:
    """See the module docstring."""

    def __init__(self, fs: LogFileSystem, path: str, base_offset: int, entries_max: int,
                 *, count: int = 0) -> None:
        self.fs = fs
        self.path = path
        self.base_offset = base_offset
        self.entries_max = entries_max
        self._count = count
        """Entries in the file (the arrays hold them once loaded)."""
        self._relative: array[int] | None = array("i") if count == 0 else None
        self._positions: array[int] = array("i")
        self._pending = bytearray()

    # ------------------------------------------------------------------ loading

    @classmethod
    def open(cls, fs: LogFileSystem, path: str, base_offset: int, entries_max: int,
             segment_bytes: int) -> OffsetIndex | None:
        """The index in `path` if it passes `check` against a segment of `segment_bytes`
        bytes, else None (missing, torn or inconsistent: rebuild it)."""
        try:
            size = fs.size(path)
        except FileNotFoundError:
            return None
        if size % ENTRY_BYTES or size // ENTRY_BYTES > entries_max:
            return None
        index = cls(fs, path, base_offset, entries_max, count=size // ENTRY_BYTES)
        if size and not index._check_last(fs.read(path, size - ENTRY_BYTES, ENTRY_BYTES),
                                          segment_bytes):
            return None
        return index

    @staticmethod
    def _check_last(last: bytes, segment_bytes: int) -> bool:
        if len(last) != ENTRY_BYTES:
            return False
        relative, position = ENTRY.unpack(last)
        return bool(relative >= 0 and 0 <= position < segment_bytes)

    def _load(self) -> array[int]:
        if self._relative is None:
            values = _ints(self.fs.read(self.path, 0, self._count * ENTRY_BYTES))
            if len(values) != 2 * self._count:
                values = values[: len(values) & ~1]
                self._count = len(values) // 2
            self._relative = values[0::2]
            self._positions = values[1::2]
        return self._relative

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return self._count

    @property
    def is_full(self) -> bool:
        return self._count >= self.entries_max

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the last entry at or below `offset`, or (base offset, 0)."""
        relative = self._load()
        i = bisect_right(relative, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + relative[i], self._positions[i]

    def floor_by_position(self, position: int) -> tuple[int, int] | None:
        """(offset, position) of the last entry whose position is <= `position`, or None."""
        self._load()
        i = bisect_right(self._positions, position) - 1
        if i < 0:
            return None
        assert self._relative is not None
        return self.base_offset + self._relative[i], self._positions[i]

    def last_entry(self) -> tuple[int, int] | None:
        if self._count == 0:
            return None
        if self._relative is None:
            relative, position = ENTRY.unpack(
                self.fs.read(self.path, (self._count - 1) * ENTRY_BYTES, ENTRY_BYTES))
            return self.base_offset + relative, position
        return self.base_offset + self._relative[-1], self._positions[-1]

    def entries(self) -> list[tuple[int, int]]:
        """Every entry as (offset, position) (for checks and tests)."""
        relative = self._load()
        return [(self.base_offset + r, p) for r, p in zip(relative, self._positions, strict=True)]

    # ------------------------------------------------------------------ writing

    def add(self, offset: int, position: int) -> None:
        """Add an entry (kept in memory and queued for the file; `write_pending` appends).
        A full index takes no more entries."""
        relative = self._load()
        rel = offset - self.base_offset
        if self.is_full:  # the log rolls first; a cleaner's output may just get sparser
            return
        assert not relative or (rel > relative[-1] and position > self._positions[-1])
        relative.append(rel)
        self._positions.append(position)
        self._count += 1
        self._pending += ENTRY.pack(rel, position)

    def write_pending(self, at_least: int = 0) -> None:
        """Append the queued entries to the file (only once `at_least` bytes are queued)."""
        if self._pending and len(self._pending) >= at_least:
            self.fs.append(self.path, (self._pending,))
            self._pending = bytearray()

    def truncate_to(self, offset: int) -> None:
        """Drop the entries for offsets >= `offset` (their batches are gone)."""
        relative = self._load()
        self.write_pending()
        keep = bisect_right(relative, offset - 1 - self.base_offset)
        if keep < self._count:
            del relative[keep:]
            del self._positions[keep:]
            self._count = keep
            self.fs.truncate(self.path, keep * ENTRY_BYTES)

    def replace_all(self, entries: list[tuple[int, int]]) -> None:
        """Rewrite the file with these (offset, position) entries (a rebuild)."""
        self._relative = array("i", (o - self.base_offset for o, _ in entries))
        self._positions = array("i", (p for _, p in entries))
        self._count = len(entries)
        self._pending = bytearray()
        write_file(self.fs, self.path, encode(self.base_offset, entries))


def encode(base_offset: int, entries: list[tuple[int, int]]) -> bytes:
    return b"".join(ENTRY.pack(o - base_offset, p) for o, p in entries)


def write_file(fs: LogFileSystem, path: str, data: bytes) -> None:
    """Replace a derived file's content (not atomically: derived data is rebuilt if torn)."""
    with contextlib.suppress(FileNotFoundError):
        fs.truncate(path, 0)
    fs.append(path, (data,))
