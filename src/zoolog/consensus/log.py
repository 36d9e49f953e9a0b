"""The Raft log of one node, in memory: a snapshot point followed by entries.

Invariants (asserted):
- indexes are contiguous: `entries[i].index == snapshot.index + 1 + i`;
- terms never decrease along the log;
- `applied <= committed <= last_index()`, and `committed` never decreases;
- `stable` (persisted up to) `<= last_index()`; entries above it are handed out for persistence;
- an entry at or below `committed` is never truncated.
"""

from __future__ import annotations

from zoolog.consensus.types import ConfState, Entry, Snapshot


class RaftLog:
    def __init__(self, snapshot: Snapshot, entries: list[Entry], committed: int) -> None:
        self.snapshot = snapshot
        self.entries = list(entries)
        self.stable = self.last_index()
        self.committed = max(committed, snapshot.index)
        self.applied = snapshot.index
        self.pending_snapshot: Snapshot | None = None
        assert self.committed <= self.last_index()

    @classmethod
    def empty(cls, conf: ConfState) -> RaftLog:
        return cls(Snapshot(0, 0, conf), [], 0)

    def first_index(self) -> int:
        return self.snapshot.index + 1

    def last_index(self) -> int:
        return self.snapshot.index + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot.term

    def term(self, index: int) -> int | None:
        """The term of `index`, or None when it is compacted away or not in the log."""
        if index == self.snapshot.index:
            return self.snapshot.term
        offset = index - self.snapshot.index - 1
        if offset < 0 or offset >= len(self.entries):
            return None
        return self.entries[offset].term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: a candidate's log is at least as up to date as ours."""
        ours = self.last_term()
        return last_term > ours or (last_term == ours and last_index >= self.last_index())

    def slice(self, low: int, high: int, max_bytes: int) -> list[Entry]:
        """Entries [low, high), at least one, at most `max_bytes` beyond the first."""
        start = low - self.snapshot.index - 1
        end = min(high, self.last_index() + 1) - self.snapshot.index - 1
        assert start >= 0, f"slice from {low} below the snapshot at {self.snapshot.index}"
        out: list[Entry] = []
        size = 0
        for entry in self.entries[start:end]:
            size += entry.size_bytes()
            if out and size > max_bytes:
                break
            out.append(entry)
        return out

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> int:
        """Append after truncating any conflicting suffix; return the new last index."""
        if not entries:
            return self.last_index()
        first = entries[0].index
        assert first > self.committed, f"truncating committed entries at {first}"
        assert first <= self.last_index() + 1, "gap in the log"
        keep = first - self.snapshot.index - 1
        del self.entries[keep:]
        self.entries.extend(entries)
        self.stable = min(self.stable, first - 1)
        return self.last_index()

    def append_matching(self, prev_index: int, entries: tuple[Entry, ...]) -> int:
        """Follower side: skip entries we already hold, truncate from the first conflict."""
        for position, entry in enumerate(entries):
            if self.term(entry.index) != entry.term:
                if entry.index <= self.snapshot.index:
                    continue
                return self.append(list(entries[position:]))
        return prev_index + len(entries)

    def commit_to(self, index: int) -> bool:
        if index > self.committed:
            assert index <= self.last_index(), f"commit {index} beyond last {self.last_index()}"
            self.committed = index
            return True
        return False

    def unstable_entries(self) -> list[Entry]:
        start = self.stable - self.snapshot.index
        return self.entries[max(start, 0) :]

    def next_committed_entries(self) -> list[Entry]:
        """Committed, persisted entries not yet handed out for applying."""
        high = min(self.committed, self.stable)
        if high <= self.applied:
            return []
        start = max(self.applied - self.snapshot.index, 0)
        return self.entries[start : high - self.snapshot.index]

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the log by a snapshot received from the leader."""
        self.snapshot = snapshot
        self.entries = []
        self.committed = snapshot.index
        self.stable = snapshot.index
        self.pending_snapshot = snapshot

    def compact(self, index: int, data: bytes, conf: ConfState) -> None:
        """Drop entries up to `index` (already applied) behind a snapshot holding `data`."""
        assert index <= self.applied, "compacting entries not yet applied"
        if index <= self.snapshot.index:
            return
        term = self.term(index)
        assert term is not None
        self.entries = self.entries[index - self.snapshot.index :]
        self.snapshot = Snapshot(index, term, conf, data)
