"""`TimeIndex`: a segment's sparse timestamp -> offset index (the `.timeindex` file).

Owns the entries of one segment: (timestamp int64, relative offset int32), big-endian, 12
bytes each, Kafka's format. An entry (T, O) says the largest batch max timestamp among the
batches up to offset base + O is T, and the batch ending at base + O carries it. An entry is
added at the same points as the offset index when the segment's max timestamp so far has
grown past the last entry's, and once more when the segment stops being active (so the last
entry of an inactive segment holds its max timestamp). Both columns never decrease;
timestamps strictly increase.

Derived data like the offset index: appended unsynced, rebuilt on recovery when missing or
inconsistent, loaded lazily (opening reads only the last entry). Never scans the segment.
"""

from __future__ import annotations

import struct
from bisect import bisect_right

from zoolog.logstore.files import LogFileSystem
from zoolog.logstore.offset_index import write_file

ENTRY = struct.Struct(">qi")
ENTRY_BYTES = ENTRY.size


class TimeIndex:
    """See the module docstring."""

    def __init__(self, fs: LogFileSystem, path: str, base_offset: int, entries_max: int,
                 *, count: int = 0) -> None:
        self.fs = fs
        self.path = path
        self.base_offset = base_offset
        self.entries_max = entries_max
        self._count = count
        self._timestamps: list[int] | None = [] if count == 0 else None
        self._relative: list[int] = []
        self._last: tuple[int, int] | None = None
        self._pending = bytearray()

    @classmethod
    def open(cls, fs: LogFileSystem, path: str, base_offset: int,
             entries_max: int) -> TimeIndex | None:
        """The index in `path`, or None if missing or torn (rebuild it)."""
        try:
            size = fs.size(path)
        except FileNotFoundError:
            return None
        if size % ENTRY_BYTES or size // ENTRY_BYTES > entries_max:
            return None
        index = cls(fs, path, base_offset, entries_max, count=size // ENTRY_BYTES)
        if size:
            last = fs.read(path, size - ENTRY_BYTES, ENTRY_BYTES)
            if len(last) != ENTRY_BYTES:
                return None
            timestamp, relative = ENTRY.unpack(last)
            if relative < 0:
                return None
            index._last = (timestamp, base_offset + relative)
        return index

    def _load(self) -> list[int]:
        if self._timestamps is None:
            data = self.fs.read(self.path, 0, self._count * ENTRY_BYTES)
            pairs = list(ENTRY.iter_unpack(data[: len(data) - len(data) % ENTRY_BYTES]))
            self._timestamps = [t for t, _ in pairs]
            self._relative = [r for _, r in pairs]
            self._count = len(pairs)
        return self._timestamps

    def __len__(self) -> int:
        return self._count

    @property
    def is_full(self) -> bool:
        return self._count >= self.entries_max

    def last_entry(self) -> tuple[int, int] | None:
        """(timestamp, offset) of the last entry, or None."""
        if self._count == 0:
            return None
        if self._timestamps is None:
            return self._last
        return self._timestamps[-1], self.base_offset + self._relative[-1]

    def lookup(self, timestamp: int) -> int:
        """The offset from which a forward scan finds the first batch whose max timestamp is
        >= `timestamp`: the offset of the last entry whose timestamp is below it (every batch
        up to there is older), else the base offset."""
        timestamps = self._load()
        i = bisect_right(timestamps, timestamp - 1) - 1
        if i < 0:
            return self.base_offset
        return self.base_offset + self._relative[i]

    def entries(self) -> list[tuple[int, int]]:
        self._load()
        assert self._timestamps is not None
        return [(t, self.base_offset + r) for t, r in zip(self._timestamps, self._relative,
                                                          strict=True)]

    def maybe_add(self, timestamp: int, offset: int, *, skip_full_check: bool = False) -> None:
        """Add (timestamp, offset) if the timestamp is newer than the last entry's."""
        timestamps = self._load()
        if timestamps and timestamp <= timestamps[-1]:
            return
        if self.is_full and not skip_full_check:
            return
        rel = offset - self.base_offset
        if self._relative and rel < self._relative[-1]:
            return
        timestamps.append(timestamp)
        self._relative.append(rel)
        self._count += 1
        self._pending += ENTRY.pack(timestamp, rel)

    def write_pending(self, at_least: int = 0) -> None:
        """Append the queued entries to the file (only once `at_least` bytes are queued)."""
        if self._pending and len(self._pending) >= at_least:
            self.fs.append(self.path, (self._pending,))
            self._pending = bytearray()

    def truncate_to(self, offset: int) -> None:
        """Drop the entries for offsets >= `offset`."""
        timestamps = self._load()
        self.write_pending()
        keep = bisect_right(self._relative, offset - 1 - self.base_offset)
        if keep < self._count:
            del timestamps[keep:]
            del self._relative[keep:]
            self._count = keep
            self.fs.truncate(self.path, keep * ENTRY_BYTES)

    def replace_all(self, entries: list[tuple[int, int]]) -> None:
        """Rewrite the file with these (timestamp, offset) entries (a rebuild)."""
        self._timestamps = [t for t, _ in entries]
        self._relative = [o - self.base_offset for _, o in entries]
        self._count = len(entries)
        self._pending = bytearray()
        write_file(self.fs, self.path,
                   b"".join(ENTRY.pack(t, o - self.base_offset) for t, o in entries))
