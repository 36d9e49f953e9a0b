"""Incremental fetch sessions (KIP-227): the broker remembers what a consumer fetches.

A Fetch v7+ carries `session_id` and `session_epoch`:

| session_id | epoch | meaning                                                            |
| ---------- | ----- | ------------------------------------------------------------------ |
| 0          | -1    | a full fetch without a session (librdkafka, aiokafka)              |
| any        | 0     | a full fetch that opens a new session (an old `session_id` closes) |
| id         | n > 0 | an incremental fetch: the request lists only changed partitions    |
| id         | -1    | close the session; this request is a full fetch                    |

In an incremental fetch the partitions to read are the session's (updated by the request's
partitions, minus `forgotten_topics_data`), and the response lists only partitions that
changed since the last response: records, an error, or a new high watermark, last stable
offset or log start offset. Errors: an unknown session -> FETCH_SESSION_ID_NOT_FOUND, a
session opened by topic id used by name (or the reverse) -> FETCH_SESSION_TOPIC_ID_ERROR, an
epoch other than the expected one -> INVALID_FETCH_SESSION_EPOCH (all top-level, and the
client falls back to a full fetch). Sessions beyond `sessions_max` evict the least recently
used one. Partitions are keyed by (topic id, partition) from v13 and by (name, partition)
before, as the client addresses them.

Pure data and functions: session ids come from a counter, time from arguments.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from zoolog.protocol.kafka.errors import Err

FINAL_EPOCH = -1
INITIAL_EPOCH = 0


@dataclass(slots=True)
class FetchPartitionSpec:
    """One partition to read, as the request (or the session) asks for it."""

    topic: str
    topic_id: bytes
    partition: int
    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int = -1
    log_start_offset: int = -1
    last_fetched_epoch: int = -1
    # what the last response told the client (for incremental sessions)
    high_watermark: int = -1
    last_stable_offset: int = -1
    sent_log_start_offset: int = -1


PartitionKey = tuple[object, int]


@dataclass(slots=True)
class FetchSession:
    session_id: int
    epoch: int
    """The epoch the next incremental request must carry."""
    by_id: bool
    partitions: OrderedDict[PartitionKey, FetchPartitionSpec]
    last_used_ms: int


@dataclass(slots=True)
class FetchContext:
    """What one Fetch request reads and how its response is shaped."""

    partitions: list[FetchPartitionSpec]
    session_id: int = 0
    incremental: bool = False
    error_code: int = Err.NONE

    def include(self, spec: FetchPartitionSpec, error_code: int, has_records: bool,
                high_watermark: int, last_stable_offset: int, log_start_offset: int) -> bool:
        """Whether the response lists this partition; updates what the session last sent."""
        changed = (not self.incremental or has_records or error_code != Err.NONE
                   or spec.high_watermark != high_watermark
                   or spec.last_stable_offset != last_stable_offset
                   or spec.sent_log_start_offset != log_start_offset)
        spec.high_watermark = high_watermark
        spec.last_stable_offset = last_stable_offset
        spec.sent_log_start_offset = log_start_offset
        return changed


class FetchSessionCache:
    """See the module docstring."""

    def __init__(self, sessions_max: int = 1000) -> None:
        self.sessions_max = sessions_max
        self._sessions: OrderedDict[int, FetchSession] = OrderedDict()
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._sessions)

    def resolve(self, session_id: int, epoch: int, requested: list[FetchPartitionSpec],
                forgotten: list[PartitionKey], by_id: bool, now_ms: int) -> FetchContext:
        """The context of a Fetch: which partitions to read and the session id to answer."""
        if epoch == FINAL_EPOCH:
            if session_id:
                self._sessions.pop(session_id, None)
            return FetchContext(requested)
        if epoch == INITIAL_EPOCH:
            if session_id:
                self._sessions.pop(session_id, None)
            return FetchContext(requested, self._open(requested, by_id, now_ms))
        session = self._sessions.get(session_id)
        if session is None:
            return FetchContext([], error_code=Err.FETCH_SESSION_ID_NOT_FOUND)
        if session.by_id != by_id:  # opened by topic id, used by name, or the reverse
            return FetchContext([], error_code=Err.FETCH_SESSION_TOPIC_ID_ERROR)
        if epoch != session.epoch:
            return FetchContext([], session_id=0, error_code=Err.INVALID_FETCH_SESSION_EPOCH)
        for spec in requested:
            key: PartitionKey = (spec.topic_id if by_id else spec.topic, spec.partition)
            cached = session.partitions.get(key)
            if cached is None:
                session.partitions[key] = spec
            else:
                cached.fetch_offset = spec.fetch_offset
                cached.partition_max_bytes = spec.partition_max_bytes
                cached.current_leader_epoch = spec.current_leader_epoch
                cached.log_start_offset = spec.log_start_offset
                cached.last_fetched_epoch = spec.last_fetched_epoch
        for key in forgotten:
            session.partitions.pop(key, None)
        session.epoch = epoch + 1 if epoch < 0x7FFFFFFF else 1
        session.last_used_ms = now_ms
        self._sessions.move_to_end(session_id)
        return FetchContext(list(session.partitions.values()), session_id, incremental=True)

    def _open(self, partitions: list[FetchPartitionSpec], by_id: bool, now_ms: int) -> int:
        while len(self._sessions) >= self.sessions_max:
            self._sessions.popitem(last=False)
        session_id = self._next_id
        self._next_id = self._next_id + 1 if self._next_id < 0x7FFFFFFF else 1
        ordered: OrderedDict[PartitionKey, FetchPartitionSpec] = OrderedDict(
            ((p.topic_id if by_id else p.topic, p.partition), p) for p in partitions)
        self._sessions[session_id] = FetchSession(session_id, 1, by_id, ordered, now_ms)
        return session_id

    def drop_topic(self, topic: str, topic_id: bytes) -> None:
        """Forget a deleted topic's partitions in every session."""
        for session in self._sessions.values():
            for key in [k for k in session.partitions if k[0] in (topic, topic_id)]:
                del session.partitions[key]

    def expire(self, now_ms: int, idle_ms: int) -> int:
        """Drop sessions unused for `idle_ms`; returns how many went."""
        gone = [sid for sid, s in self._sessions.items() if now_ms - s.last_used_ms >= idle_ms]
        for sid in gone:
            del self._sessions[sid]
        return len(gone)
