"""`TransactionIndex`: a segment's aborted transactions (the `.txnindex` file).

Owns the entries of one segment, Kafka's `AbortedTxn` format: version int16 (0), producer id
int64, first offset int64, last offset int64 (the ABORT marker's offset), last stable offset
int64 (the partition's LSO once the transaction was aborted), 34 bytes each, big-endian. An
entry sits in the segment that holds its marker; its first offset may lie in an earlier
segment. A read_committed fetch collects, from the segment holding its start offset on, the
entries that overlap the fetched range (`PartitionLog.aborted_between`), and the consumer
drops that producer's records from the first offset up to the marker.

Derived data: appended unsynced, made durable with its segment's flush and before every
producer-state snapshot (`sync`), so after a crash only entries of markers at or above
both the recovery point and the newest snapshot can be missing; the broker rebuilds those
from the log's markers, and a whole index when its file is missing or garbage. Carried
over to a cleaned segment by the cleaner. Entries are kept in memory; the file is read
once, on open. Never scans the segment.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from zoolog.logstore.files import LogFileSystem
from zoolog.logstore.offset_index import write_file

ENTRY = struct.Struct(">hqqqq")
ENTRY_BYTES = ENTRY.size
VERSION = 0


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


class TransactionIndex:
    """See the module docstring."""

    def __init__(self, fs: LogFileSystem, path: str,
                 entries: list[AbortedTxn] | None = None) -> None:
        self.fs = fs
        self.path = path
        self.entries: list[AbortedTxn] = entries or []
        self.dirty = False
        """Entries appended since the last `sync`."""

    @classmethod
    def open(cls, fs: LogFileSystem, path: str) -> tuple[TransactionIndex | None, bool]:
        """(the index in `path`, whether its tail was torn). The index is None if the file
        is missing or holds garbage (an unknown version, a range upside down): the caller
        rebuilds it; every segment is created with one, so a missing file means lost
        entries (or a data directory from before transactions). A torn tail (a partial
        last entry) is cut off: whole entries before it are kept."""
        try:
            size = fs.size(path)
        except FileNotFoundError:
            return None, False
        whole = size - size % ENTRY_BYTES
        data = fs.read(path, 0, whole) if whole else b""
        entries: list[AbortedTxn] = []
        for at in range(0, whole, ENTRY_BYTES):
            version, pid, first, last, lso = ENTRY.unpack_from(data, at)
            if version != VERSION or first > last or (entries
                                                      and last <= entries[-1].last_offset):
                return None, False
            entries.append(AbortedTxn(pid, first, last, lso))
        if whole != size:
            fs.truncate(path, whole)
        return cls(fs, path, entries), whole != size

    def append(self, entry: AbortedTxn) -> None:
        if self.entries and entry.last_offset <= self.entries[-1].last_offset:
            raise ValueError(f"aborted transaction {entry} is not after {self.entries[-1]}")
        self.entries.append(entry)
        self.fs.append(self.path, (ENTRY.pack(VERSION, *entry),))
        self.dirty = True

    def sync(self) -> None:
        """fsync the file if entries were appended since the last sync."""
        if self.dirty:
            self.fs.fsync(self.path)
            self.dirty = False

    def overlapping(self, start_offset: int, end_offset: int) -> list[AbortedTxn]:
        """Entries whose [first, last] range meets [start_offset, end_offset)."""
        return [e for e in self.entries
                if e.last_offset >= start_offset and e.first_offset < end_offset]

    def truncate_to(self, offset: int) -> None:
        """Drop entries whose marker lies at or beyond `offset` (the log was truncated)."""
        kept = [e for e in self.entries if e.last_offset < offset]
        if len(kept) != len(self.entries):
            self.replace_all(kept)

    def replace_all(self, entries: list[AbortedTxn]) -> None:
        self.entries = list(entries)
        write_file(self.fs, self.path,
                   b"".join(ENTRY.pack(VERSION, *entry) for entry in self.entries))
        self.dirty = True
