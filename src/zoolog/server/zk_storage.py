"""Durable storage of the coordination service: the transaction log and snapshots on disk.

Layout of the data directory (`dataDir` in zoo.cfg):

    version-2/log.<first zxid, 16 hex digits>        transaction log segments
    version-2/snapshot.<last zxid, 16 hex digits>    snapshots (coord.snapshot encoding)

A log segment is a 8-byte header (`ZLTX` + format version) followed by records
`u32 length | u32 crc32(payload) | payload`, where the payload is a `Txn` encoding, then zeros:
segments grow ahead of their records in zero-filled steps (`LOG_PREALLOC_BYTES`, as
ZooKeeper's preAllocSize), so that the fdatasync of a batch need not commit a new file size.
A zero length marks the end of the records (no txn is empty).

Durability contract: `append_batch` writes every record of a batch with one `write` and then
calls `fdatasync` (with `sync_writes=True`, ZooKeeper's forceSync=yes, the default) before it
returns; the caller acknowledges the batch's writes only after that. So an acknowledged write
survives `kill -9` and power loss. With `sync_writes=False` a crash of the machine (not of the
process) may lose the last writes.

Recovery: load the newest snapshot that decodes, replay every logged txn after it, and stop at
the first record that is short or fails its checksum, or at the zeros after the last record.
Anything but zeros there can only be a write that was never acknowledged (it was not fully
synced), so the segment is truncated there and the loss is reported through
`Recovery.truncated_bytes`; a tail of zeros is the unused preallocation and is dropped quietly.
"""

from __future__ import annotations

import itertools
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from zoolog.coord import snapshot
from zoolog.coord.datatree import CoordState
from zoolog.coord.txn import Txn
from zoolog.errors import JuteDecodeError
from zoolog.limits import Limits

LOG_MAGIC = b"ZLTX"
LOG_FORMAT_VERSION = 1
_LOG_HEADER = struct.Struct(">4si")
_RECORD = struct.Struct(">II")
LOG_PREALLOC_BYTES = 16 << 20
"""Zero-filled growth step of a log segment. Measured here (36 kB batches, ext4): fdatasync
p50 0.31-0.34 ms when appending, 0.19-0.23 ms inside zero-filled space."""
_LOG_FIRST_PREALLOC_BYTES = 1 << 20  # a new segment starts small: opened on the event loop
_ZEROS = bytes(1 << 20)
_ZXID = struct.Struct(">q")
_TXN_ZXID_AT = 12  # TxnHeader: clientId (8 bytes), cxid (4), zxid (8), ...
_TXN_ZXID_END = _TXN_ZXID_AT + _ZXID.size
SNAPSHOTS_KEPT = 3


@dataclass
class Recovery:
    """What `ZkStorage.recover` found."""

    state: CoordState
    snapshot_zxid: int = 0
    replayed_txns: int = 0
    truncated_bytes: int = 0
    truncated_file: str | None = None
    skipped_snapshots: list[str] = field(default_factory=list)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ZkStorage:
    """Append-only txn log segments plus snapshots in `<data_dir>/version-2`."""

    def __init__(self, data_dir: str | os.PathLike[str], sync_writes: bool = True) -> None:
        self.dir = Path(data_dir) / "version-2"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sync_writes = sync_writes
        self._fd: int | None = None
        self._end = 0  # where the next record goes in the current segment
        self._allocated = 0  # the segment's size: zeros from _end on
        self.current_log: Path | None = None
        self.bytes_written = 0

    # ------------------------------------------------------------------ recovery

    def _numbered(self, prefix: str) -> list[tuple[int, Path]]:
        """Files named `<prefix>.<hex zxid>`, oldest first."""
        out = []
        for path in self.dir.glob(prefix + ".*"):
            try:
                out.append((int(path.suffix[1:], 16), path))
            except ValueError:
                continue
        return sorted(out)

    def _logs(self) -> list[tuple[int, Path]]:
        return self._numbered("log")

    def _snapshots(self) -> list[tuple[int, Path]]:
        return self._numbered("snapshot")

    def recover(self, limits: Limits | None = None) -> Recovery:
        """Rebuild the state exactly as it was acknowledged; truncate a torn log tail."""
        state: CoordState | None = None
        recovery = Recovery(CoordState(limits))
        for zxid, path in reversed(self._snapshots()):
            try:
                state = snapshot.decode(path.read_bytes(), limits)
            except JuteDecodeError:
                recovery.skipped_snapshots.append(path.name)
                continue
            recovery.snapshot_zxid = zxid
            break
        if state is not None:
            recovery.state = state
        state = recovery.state
        logs = self._logs()
        for index, (_first, path) in enumerate(logs):
            good_end, size, zero_tail, txns = self._read_log(path, state.last_zxid)
            for txn in txns:
                state.apply(txn)
                recovery.replayed_txns += 1
            if good_end < size and zero_tail:
                if index == len(logs) - 1:  # appends may go on here: drop the padding
                    with open(path, "r+b") as handle:
                        handle.truncate(good_end)
                        handle.flush()
                        os.fsync(handle.fileno())
            elif good_end < size:
                if index != len(logs) - 1:
                    raise JuteDecodeError(
                        f"{path} is damaged at byte {good_end} but later log segments exist; "
                        "refusing to start on a corrupted committed prefix"
                    )
                with open(path, "r+b") as handle:
                    handle.truncate(good_end)
                    handle.flush()
                    os.fsync(handle.fileno())
                recovery.truncated_bytes = size - good_end
                recovery.truncated_file = path.name
        return recovery

    def _read_log(self, path: Path, applied_zxid: int) -> tuple[int, int, bool, list[Txn]]:
        """Check a segment's records. Returns the end of its last good record, the file's size,
        whether only zeros (unused preallocation) follow that end, and the txns newer than
        `applied_zxid` (older ones, already in the snapshot, are not decoded)."""
        buf = path.read_bytes()
        txns: list[Txn] = []
        if len(buf) < _LOG_HEADER.size:
            return 0, len(buf), buf.count(0) == len(buf), txns
        magic, version = _LOG_HEADER.unpack_from(buf, 0)
        if magic != LOG_MAGIC or version != LOG_FORMAT_VERSION:
            raise JuteDecodeError(f"{path} is not a zoolog txn log")
        pos = _LOG_HEADER.size
        while pos + _RECORD.size <= len(buf):
            length, crc = _RECORD.unpack_from(buf, pos)
            start = pos + _RECORD.size
            if start + length > len(buf):
                break
            payload = buf[start : start + length]
            if zlib.crc32(payload) != crc or length < _TXN_ZXID_END:
                break
            if _ZXID.unpack_from(payload, _TXN_ZXID_AT)[0] > applied_zxid:
                try:
                    txns.append(Txn.from_bytes(payload))
                except JuteDecodeError:
                    break
            pos = start + length
        return pos, len(buf), buf.count(0, pos) == len(buf) - pos, txns

    # ------------------------------------------------------------------ writing

    def open_log(self, next_zxid: int) -> None:
        """Start a new segment whose first txn will be `next_zxid` (or go on appending to the
        segment of that name, which `recover` left ending at its last record)."""
        self.close()
        path = self.dir / f"log.{next_zxid:016x}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        created = size == 0
        if created:
            os.write(fd, _LOG_HEADER.pack(LOG_MAGIC, LOG_FORMAT_VERSION))
            size = _LOG_HEADER.size
        self._fd = fd
        self._end = size
        self._allocated = size
        self._preallocate(_LOG_FIRST_PREALLOC_BYTES)
        if created:
            _fsync_dir(self.dir)
        self.current_log = path

    def _preallocate(self, bytes_ahead: int) -> None:
        """Zero-fill the segment to `bytes_ahead` past the last record and make it durable."""
        assert self._fd is not None
        target = self._end + bytes_ahead
        while self._allocated < target:
            chunk = min(len(_ZEROS), target - self._allocated)
            self._allocated += os.pwrite(self._fd, _ZEROS[:chunk], self._allocated)
        os.fsync(self._fd)

    def append_batch(self, payloads: Iterable[bytes]) -> None:
        """Write a batch of encoded txns and make it durable (one write, one fdatasync).

        Runs off the event loop (in a worker thread); nothing else writes the log meanwhile.
        """
        assert self._fd is not None, "open_log first"
        out = bytearray()
        for payload in payloads:
            out += _RECORD.pack(len(payload), zlib.crc32(payload))
            out += payload
        if self._end + len(out) > self._allocated:
            self._preallocate(len(out) + LOG_PREALLOC_BYTES)
        view = memoryview(out)
        while view:
            written = os.pwrite(self._fd, view, self._end)
            self._end += written
            view = view[written:]
        self.bytes_written += len(out)
        if self.sync_writes:
            os.fdatasync(self._fd)

    def write_snapshot(self, data: bytes, zxid: int) -> Path:
        """Atomically write a snapshot (temp file, fsync, rename, fsync dir); prune old ones."""
        final = self.write_snapshot_file(data, zxid)
        self.prune(zxid)
        return final

    def write_snapshot_file(self, data: bytes, zxid: int) -> Path:
        """Write `snapshot.<zxid>` atomically (temp file, fsync, rename, fsync dir) and
        nothing else: safe in a forked child (see `zk_snapshotter.py`)."""
        final = self.dir / f"snapshot.{zxid:016x}"
        temp = final.with_name(final.name + ".tmp")
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
        _fsync_dir(self.dir)
        return final

    def prune(self, newest_snapshot_zxid: int) -> None:
        """Drop snapshots beyond the newest SNAPSHOTS_KEPT and log segments no kept snapshot
        needs (and a temp file a killed snapshot writer left)."""
        for temp in self.dir.glob("snapshot.*.tmp"):
            temp.unlink(missing_ok=True)
        self._prune(newest_snapshot_zxid)

    def _prune(self, newest_snapshot_zxid: int) -> None:
        snapshots = self._snapshots()
        keep = snapshots[-SNAPSHOTS_KEPT:]
        for _zxid, path in snapshots[:-SNAPSHOTS_KEPT]:
            path.unlink(missing_ok=True)
        oldest_kept = keep[0][0] if keep else newest_snapshot_zxid
        logs = self._logs()
        # a segment is needed if any txn in it is newer than the oldest kept snapshot
        for (_first, path), (next_first, _next_path) in itertools.pairwise(logs):
            if next_first <= oldest_kept + 1 and path != self.current_log:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())
