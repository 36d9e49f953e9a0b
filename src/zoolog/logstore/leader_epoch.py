"""`LeaderEpochCache`: which leader epoch started at which offset, for one partition.

Owns the (epoch, start offset) pairs of the partition, both strictly increasing, persisted in
the partition directory's `leader-epoch-checkpoint` in Kafka's checkpoint text format:

    0               version
    2               number of entries
    0 0             epoch start_offset
    3 1500

It answers OffsetForLeaderEpoch (`end_offset_for`, Kafka's `LeaderEpochFileCache.endOffsetFor`)
and follows the log: truncating the log's end drops the epochs that started at or after the
new end; moving the log start drops the epochs wholly before it and moves the first kept one
up to the start.

Persistence: a change marks the cache dirty; the bytes are written (with `write_atomic`) by
the log's flush, in the flush worker, never on the append path. That is safe because the
cache is derived from the batches' partition leader epochs: on open the log drops entries at
or above the first segment it re-validates and re-assigns them from the batch headers, and
trims the cache to the log's start and end. Never does I/O except through the injected
`LogFileSystem`.
"""

from __future__ import annotations

from bisect import bisect_right

from zoolog.logstore.files import LogFileSystem

CHECKPOINT_NAME = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class LeaderEpochCache:
    """See the module docstring."""

    def __init__(self, entries: list[tuple[int, int]] | None = None) -> None:
        self._epochs: list[int] = [e for e, _ in entries or ()]
        self._starts: list[int] = [o for _, o in entries or ()]
        self.dirty = False

    # ------------------------------------------------------------------ persistence

    @classmethod
    def load(cls, fs: LogFileSystem, dir: str) -> LeaderEpochCache:
        """The cache in `dir`'s checkpoint; an unreadable or missing one gives an empty cache
        (it is rebuilt from the batches being re-validated)."""
        path = f"{dir}/{CHECKPOINT_NAME}"
        try:
            text = fs.read(path, 0, fs.size(path)).decode("ascii")
            entries = parse_checkpoint(text)
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            cache = cls()
            cache.dirty = True
            return cache
        cache = cls()
        for epoch, start in entries:
            cache.assign(epoch, start)
        cache.dirty = False
        return cache

    def checkpoint_bytes(self) -> bytes:
        return format_checkpoint(list(zip(self._epochs, self._starts, strict=True))).encode()

    def persist(self, fs: LogFileSystem, dir: str) -> None:
        fs.write_atomic(f"{dir}/{CHECKPOINT_NAME}", self.checkpoint_bytes())
        self.dirty = False

    # ------------------------------------------------------------------ queries

    def entries(self) -> list[tuple[int, int]]:
        return list(zip(self._epochs, self._starts, strict=True))

    @property
    def latest_epoch(self) -> int:
        return self._epochs[-1] if self._epochs else UNDEFINED_EPOCH

    def epoch_for_offset(self, offset: int) -> int:
        """The epoch whose range holds `offset`, or -1."""
        i = bisect_right(self._starts, offset) - 1
        return self._epochs[i] if i >= 0 else UNDEFINED_EPOCH

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (the largest epoch <= `epoch`, the start offset of the epoch
        after it, or the log end for the latest). (-1, -1) for an undefined or unknown
        (larger than the latest) epoch; for an epoch below the first known one, Kafka's
        answer: (`epoch`, the first epoch's start offset)."""
        epochs = self._epochs
        if epoch == UNDEFINED_EPOCH or not epochs:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if epoch == epochs[-1]:
            return epoch, log_end_offset
        higher = bisect_right(epochs, epoch)
        if higher == len(epochs):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if higher == 0:
            return epoch, self._starts[0]
        return epochs[higher - 1], self._starts[higher]

    # ------------------------------------------------------------------ changes

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` starts at `start_offset` (Kafka's assign: a no-op for the
        latest epoch at a later offset; entries not below the new one in both epoch and
        offset are dropped first). True if the cache changed."""
        if epoch < 0 or start_offset < 0:
            return False
        if self._epochs and epoch == self._epochs[-1] and start_offset >= self._starts[-1]:
            return False
        while self._epochs and (self._epochs[-1] >= epoch or self._starts[-1] >= start_offset):
            self._epochs.pop()
            self._starts.pop()
        self._epochs.append(epoch)
        self._starts.append(start_offset)
        self.dirty = True
        return True

    def truncate_from_end(self, end_offset: int) -> None:
        """The log now ends at `end_offset`: drop epochs starting at or after it."""
        while self._starts and self._starts[-1] >= end_offset:
            self._epochs.pop()
            self._starts.pop()
            self.dirty = True

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at `start_offset`: drop epochs wholly before it and move the
        last of those up to it (Kafka's truncateFromStart)."""
        removed = bisect_right(self._starts, start_offset)
        if removed == 0:
            return
        if removed == 1 and self._starts[0] == start_offset:
            return
        epoch = self._epochs[removed - 1]
        del self._epochs[:removed]
        del self._starts[:removed]
        self._epochs.insert(0, epoch)
        self._starts.insert(0, start_offset)
        self.dirty = True


def parse_checkpoint(text: str) -> list[tuple[int, int]]:
    """Kafka's checkpoint text: version 0, a count, then that many "a b" lines.
    ValueError if it is not one."""
    lines = text.split("\n")
    if len(lines) < 2 or lines[0].strip() != "0":
        raise ValueError("checkpoint version is not 0")
    count = int(lines[1])
    entries: list[tuple[int, int]] = []
    for line in lines[2 : 2 + count]:
        a, b = line.split()
        entries.append((int(a), int(b)))
    if len(entries) != count:
        raise ValueError("checkpoint is short")
    return entries


def format_checkpoint(entries: list[tuple[int, int]]) -> str:
    return "".join(["0\n", f"{len(entries)}\n", *(f"{a} {b}\n" for a, b in entries)])
