"""Durable Raft storage: a segmented write-ahead log, the hard state and the snapshot.

All file access goes through an injected `FileSystem` (the real one lives in
`zoolog.server.files`; `zoolog.testing.files.MemoryFileSystem` can lose un-fsynced data), so
this module does no I/O of its own.

Files in the storage directory:

    wal.<first index, 16 hex digits>   records: u32 length, u32 crc32, then the payload
                                       (term q, index q, kind b, data)
    hardstate                          term, vote, commit + crc (replaced atomically)
    snapshot                           index, term, voters, learners, data + crc (atomic)

Contract of `save(ready)`: entries are appended (a conflicting suffix is truncated first), the
segment is fsynced, then the hard state is replaced atomically — one fsync per Ready, which is
the group commit. On `open`, records are read back in order; the first short or
checksum-failing record ends the log: if it lies beyond the persisted commit index it is a torn
write that was never acknowledged and is truncated (reported in `truncated_bytes`); if it lies
at or below the commit index, committed data is damaged and `CorruptedLogError` is raised
rather than starting with a hole.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Protocol

from zoolog.consensus.types import ConfState, Entry, EntryKind, HardState, Ready, Snapshot
from zoolog.errors import ZoologError

SEGMENT_BYTES_MAX = 64 << 20

_RECORD_HEADER = struct.Struct(">II")
_ENTRY_HEAD = struct.Struct(">qqb")
_HARD = struct.Struct(">qqqI")
_SNAP_HEAD = struct.Struct(">qqii")


class CorruptedLogError(ZoologError):
    """Committed log data failed its checksum: refusing to start."""


class FileSystem(Protocol):
    """The file operations Raft storage needs; names are relative to one directory."""

    def list(self) -> list[str]: ...

    def read(self, name: str) -> bytes: ...

    def append(self, name: str, data: bytes) -> None: ...

    def fsync(self, name: str) -> None: ...

    def truncate(self, name: str, size: int) -> None: ...

    def write_atomic(self, name: str, data: bytes) -> None: ...

    def remove(self, name: str) -> None: ...


def encode_entry(entry: Entry) -> bytes:
    payload = _ENTRY_HEAD.pack(entry.term, entry.index, entry.kind) + entry.data
    return _RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _segment_name(first_index: int) -> str:
    return f"wal.{first_index:016x}"


@dataclass
class Recovered:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)
    truncated_bytes: int = 0


class RaftStorage:
    """See the module docstring."""

    def __init__(self, fs: FileSystem, segment_bytes_max: int = SEGMENT_BYTES_MAX) -> None:
        self.fs = fs
        self.segment_bytes_max = segment_bytes_max
        # (first index, name, size in bytes, [(index, byte offset of its record)])
        self.segments: list[tuple[int, str, int, list[tuple[int, int]]]] = []
        self.last_index = 0
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None

    # ------------------------------------------------------------------ recovery

    def open(self) -> Recovered:
        recovered = Recovered()
        names = set(self.fs.list())
        if "hardstate" in names:
            recovered.hard_state = self._decode_hard(self.fs.read("hardstate"))
        if "snapshot" in names:
            recovered.snapshot = self._decode_snapshot(self.fs.read("snapshot"))
        self.hard_state = recovered.hard_state
        self.snapshot = recovered.snapshot
        base = recovered.snapshot.index if recovered.snapshot else 0
        commit = max(recovered.hard_state.commit, base)
        segment_names = sorted(n for n in names if n.startswith("wal."))
        expected = None
        for position, name in enumerate(segment_names):
            data = self.fs.read(name)
            offsets: list[tuple[int, int]] = []
            pos = 0
            while pos < len(data):
                entry, end = self._decode_record(data, pos)
                if entry is None or (expected is not None and entry.index != expected):
                    damaged_index = expected if expected is not None else base + 1
                    if damaged_index <= commit or position != len(segment_names) - 1:
                        raise CorruptedLogError(
                            f"{name}: record at byte {pos} (index {damaged_index}) is damaged "
                            f"at or below the commit index {commit}, or before the last segment"
                        )
                    self.fs.truncate(name, pos)
                    self.fs.fsync(name)
                    recovered.truncated_bytes = len(data) - pos
                    data = data[:pos]
                    break
                offsets.append((entry.index, pos))
                if entry.index > base:
                    recovered.entries.append(entry)
                expected = entry.index + 1
                pos = end
            first = int(name[4:], 16)
            self.segments.append((first, name, len(data), offsets))
        # entries at or below the snapshot were compacted away
        recovered.entries = [e for e in recovered.entries if e.index > base]
        if recovered.entries and recovered.entries[0].index != base + 1:
            raise CorruptedLogError(
                f"log starts at {recovered.entries[0].index}, snapshot ends at {base}"
            )
        self.last_index = recovered.entries[-1].index if recovered.entries else base
        if commit > self.last_index:
            raise CorruptedLogError(f"commit index {commit} beyond the log end {self.last_index}")
        return recovered

    @staticmethod
    def _decode_record(data: bytes, pos: int) -> tuple[Entry | None, int]:
        if pos + _RECORD_HEADER.size > len(data):
            return None, pos
        length, crc = _RECORD_HEADER.unpack_from(data, pos)
        start = pos + _RECORD_HEADER.size
        end = start + length
        if length < _ENTRY_HEAD.size or end > len(data):
            return None, pos
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            return None, pos
        term, index, kind = _ENTRY_HEAD.unpack_from(payload, 0)
        try:
            entry_kind = EntryKind(kind)
        except ValueError:
            return None, pos
        return Entry(term, index, payload[_ENTRY_HEAD.size :], entry_kind), end

    @staticmethod
    def _decode_hard(data: bytes) -> HardState:
        if len(data) != _HARD.size:
            raise CorruptedLogError("hardstate has the wrong size")
        term, vote, commit, crc = _HARD.unpack(data)
        if zlib.crc32(data[:-4]) != crc:
            raise CorruptedLogError("hardstate checksum mismatch")
        return HardState(term, vote, commit)

    @staticmethod
    def _encode_hard(hard: HardState) -> bytes:
        body = struct.pack(">qqq", hard.term, hard.vote, hard.commit)
        return body + struct.pack(">I", zlib.crc32(body))

    @staticmethod
    def _encode_snapshot(snap: Snapshot) -> bytes:
        voters, learners = sorted(snap.conf.voters), sorted(snap.conf.learners)
        body = _SNAP_HEAD.pack(snap.index, snap.term, len(voters), len(learners))
        body += struct.pack(f">{len(voters)}q{len(learners)}q", *voters, *learners) + snap.data
        return body + struct.pack(">I", zlib.crc32(body))

    @staticmethod
    def _decode_snapshot(data: bytes) -> Snapshot:
        body, crc = data[:-4], data[-4:]
        if len(data) < _SNAP_HEAD.size + 4 or struct.pack(">I", zlib.crc32(body)) != crc:
            raise CorruptedLogError("snapshot checksum mismatch")
        index, term, n_voters, n_learners = _SNAP_HEAD.unpack_from(body, 0)
        ids_size = 8 * (n_voters + n_learners)
        ids = struct.unpack_from(f">{n_voters + n_learners}q", body, _SNAP_HEAD.size)
        conf = ConfState(frozenset(ids[:n_voters]), frozenset(ids[n_voters:]))
        return Snapshot(index, term, conf, body[_SNAP_HEAD.size + ids_size :])

    # ------------------------------------------------------------------ writing

    def save(self, ready: Ready) -> None:
        """Persist a Ready's snapshot, entries and hard state (in that order, one fsync)."""
        if ready.snapshot is not None:
            self.save_snapshot(ready.snapshot)
        if ready.entries:
            self._append(ready.entries)
        if ready.hard_state is not None and ready.hard_state != self.hard_state:
            self.fs.write_atomic("hardstate", self._encode_hard(ready.hard_state))
            self.hard_state = ready.hard_state

    def _append(self, entries: list[Entry]) -> None:
        first = entries[0].index
        if first <= self.last_index:
            self._truncate_from(first)
        touched: set[str] = set()
        for entry in entries:
            record = encode_entry(entry)
            if not self.segments or self.segments[-1][2] + len(record) > self.segment_bytes_max:
                self.segments.append((entry.index, _segment_name(entry.index), 0, []))
            seg_first, name, size, offsets = self.segments[-1]
            self.fs.append(name, record)
            offsets.append((entry.index, size))
            self.segments[-1] = (seg_first, name, size + len(record), offsets)
            touched.add(name)
            self.last_index = entry.index
        for name in sorted(touched):
            self.fs.fsync(name)

    def _truncate_from(self, index: int) -> None:
        """Drop every stored entry with index >= `index` (a conflicting suffix)."""
        while self.segments and self.segments[-1][0] >= index:
            _, name, _, _ = self.segments.pop()
            self.fs.remove(name)
        if self.segments:
            first, name, _size, offsets = self.segments[-1]
            keep = [(i, off) for i, off in offsets if i < index]
            if len(keep) < len(offsets):
                cut = offsets[len(keep)][1]
                self.fs.truncate(name, cut)
                self.fs.fsync(name)
                self.segments[-1] = (first, name, cut, keep)
        self.last_index = index - 1

    def save_snapshot(self, snap: Snapshot) -> None:
        """Store a snapshot atomically and drop log segments it covers entirely."""
        self.fs.write_atomic("snapshot", self._encode_snapshot(snap))
        self.snapshot = snap
        if snap.index >= self.last_index:
            for _, name, _, _ in self.segments:
                self.fs.remove(name)
            self.segments = []
            self.last_index = snap.index
            return
        while len(self.segments) > 1 and self.segments[1][0] <= snap.index + 1:
            _, name, _, _ = self.segments.pop(0)
            self.fs.remove(name)
