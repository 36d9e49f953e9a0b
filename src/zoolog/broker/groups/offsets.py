"""Committed offsets: per group, topic and partition, what is durable in `__consumer_offsets`.

`OffsetStore` holds only offsets whose records are on disk (the coordinator puts them here
when it replays a persisted record), so a reader never sees an offset that a crash could
take back. Beside the durable map it counts, per partition, the writes that were handed to
the log but are not yet durable (`begin_write`/`end_write`): retention leaves those
partitions alone, and deletions write a tombstone for them too, so a commit in flight is
neither expired behind its own back nor left alive by a DeleteGroups that came after it.

Pending transactional offsets (TxnOffsetCommit) get their own place: per group and
producer id, the offsets that become committed when the transaction commits and vanish
when it aborts (`add_pending_transactional`, `complete_transaction`). While any exists for
a partition, OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for it,
retention keeps the partition and deletions tombstone it.

Log order: every durable offset (`put`, `add_pending_transactional`) is stamped with the
next number of a counter, so stamps follow the log of each `__consumer_offsets` partition
(the coordinator applies a partition's records in log order, live and in `load`). At
COMMIT a transaction's offset replaces the committed one only if its record is the later
of the two (Kafka's `replayEndTransactionMarker` compares record offsets): a plain
OffsetCommit written after the transaction's record wins, and of two transactions the
later record wins whichever commits first.

Retention follows Kafka 2.1+ (KIP-211, `OffsetExpirationConditionImpl`): an offset with an
explicit expire timestamp (OffsetCommit v2-4 `retention_time_ms`) expires at that time;
any other offset expires `offsets.retention.minutes` after its base timestamp, which the
group decides (the time it became Empty, or the offset's own commit time; see
`ClassicGroup.offset_expiration_base`).

Pure data: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["OffsetAndMetadata", "OffsetStore", "TopicPartitionKey"]

TopicPartitionKey = tuple[str, int]
"""(topic, partition)."""


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    """One committed offset as Kafka stores it (`OffsetAndMetadata`)."""

    offset: int
    leader_epoch: int
    """-1 when unknown (commits before OffsetCommit v6, or the client sent none)."""
    metadata: str
    """Stored as the client sent it, character for character (confluent-kafka ends it
    with a NUL)."""
    commit_timestamp_ms: int
    expire_timestamp_ms: int | None
    """Only from OffsetCommit v2-4 with a retention time; wins over the broker's retention."""

    def is_expired(self, now_ms: int, base_timestamp_ms: int, retention_ms: int) -> bool:
        if self.expire_timestamp_ms is not None:
            return now_ms >= self.expire_timestamp_ms
        return now_ms - base_timestamp_ms >= retention_ms


class OffsetStore:
    """Durable committed offsets, writes in flight, and pending transactional offsets."""

    __slots__ = ("_in_flight", "_last_stamp", "_offsets", "_pending_txn", "_stamps")

    def __init__(self) -> None:
        self._offsets: dict[str, dict[str, dict[int, OffsetAndMetadata]]] = {}
        self._stamps: dict[str, dict[TopicPartitionKey, int]] = {}
        """The log-order stamp of each durable offset in `_offsets`."""
        self._last_stamp = 0
        self._in_flight: dict[str, dict[TopicPartitionKey, int]] = {}
        self._pending_txn: dict[
            str, dict[int, dict[TopicPartitionKey, tuple[int, OffsetAndMetadata]]]] = {}
        """group -> producer id -> (topic, partition) -> (stamp, offset)."""

    def _next_stamp(self) -> int:
        self._last_stamp += 1
        return self._last_stamp

    # -- durable offsets ---------------------------------------------------------------

    def get(self, group: str, topic: str, partition: int) -> OffsetAndMetadata | None:
        topics = self._offsets.get(group)
        if topics is None:
            return None
        partitions = topics.get(topic)
        return None if partitions is None else partitions.get(partition)

    def put(self, group: str, topic: str, partition: int, value: OffsetAndMetadata) -> None:
        """The offset's record is durable, after every record already applied."""
        self._store(group, topic, partition, value, self._next_stamp())

    def _store(self, group: str, topic: str, partition: int, value: OffsetAndMetadata,
               stamp: int) -> None:
        self._offsets.setdefault(group, {}).setdefault(topic, {})[partition] = value
        self._stamps.setdefault(group, {})[(topic, partition)] = stamp

    def delete(self, group: str, topic: str, partition: int) -> bool:
        """Forget one offset; False if there was none."""
        topics = self._offsets.get(group)
        if topics is None:
            return False
        partitions = topics.get(topic)
        if partitions is None or partitions.pop(partition, None) is None:
            return False
        stamps = self._stamps[group]
        del stamps[(topic, partition)]
        if not stamps:
            del self._stamps[group]
        if not partitions:
            del topics[topic]
            if not topics:
                del self._offsets[group]
        return True

    def has_offsets(self, group: str) -> bool:
        return group in self._offsets

    def groups(self) -> list[str]:
        return list(self._offsets)

    def topics(self, group: str) -> dict[str, dict[int, OffsetAndMetadata]]:
        """The group's offsets by topic and partition (a live view: do not change it)."""
        return self._offsets.get(group, {})

    def keys(self, group: str) -> Iterator[TopicPartitionKey]:
        for topic, partitions in self._offsets.get(group, {}).items():
            for partition in partitions:
                yield topic, partition

    def count(self) -> int:
        return sum(len(p) for topics in self._offsets.values() for p in topics.values())

    # -- writes handed to the log, not yet durable ---------------------------------------

    def begin_write(self, group: str, topic: str, partition: int) -> None:
        in_flight = self._in_flight.setdefault(group, {})
        key = (topic, partition)
        in_flight[key] = in_flight.get(key, 0) + 1

    def end_write(self, group: str, topic: str, partition: int) -> None:
        in_flight = self._in_flight[group]
        key = (topic, partition)
        left = in_flight[key] - 1
        assert left >= 0, (group, key)
        if left:
            in_flight[key] = left
        else:
            del in_flight[key]
            if not in_flight:
                del self._in_flight[group]

    def has_write_in_flight(self, group: str, topic: str, partition: int) -> bool:
        in_flight = self._in_flight.get(group)
        return in_flight is not None and (topic, partition) in in_flight

    def has_writes_in_flight(self, group: str) -> bool:
        return group in self._in_flight

    def in_flight_keys(self, group: str) -> list[TopicPartitionKey]:
        return list(self._in_flight.get(group, {}))

    # -- pending transactional offsets (TxnOffsetCommit) -----------------------------------

    def add_pending_transactional(
        self, group: str, producer_id: int, topic: str, partition: int, value: OffsetAndMetadata
    ) -> None:
        """The transaction's record is durable, after every record already applied."""
        by_producer = self._pending_txn.setdefault(group, {})
        by_producer.setdefault(producer_id, {})[(topic, partition)] = (self._next_stamp(), value)

    def complete_transaction(self, group: str, producer_id: int, *, commit: bool) -> None:
        """The transaction's marker is durable: its offsets vanish, or become committed
        where no later record committed one (see the module docstring)."""
        by_producer = self._pending_txn.get(group)
        if by_producer is None:
            return
        pending = by_producer.pop(producer_id, None)
        if not by_producer:
            del self._pending_txn[group]
        if commit and pending:
            stamps = self._stamps.get(group, {})
            for (topic, partition), (stamp, value) in pending.items():
                if stamp > stamps.get((topic, partition), 0):
                    self._store(group, topic, partition, value, stamp)

    def discard_pending_transactional(self, group: str, topic: str, partition: int) -> None:
        """A tombstone for the partition is durable: no transaction's offset for it is left."""
        by_producer = self._pending_txn.get(group)
        if by_producer is None:
            return
        for producer_id in list(by_producer):
            pending = by_producer[producer_id]
            pending.pop((topic, partition), None)
            if not pending:
                del by_producer[producer_id]
        if not by_producer:
            del self._pending_txn[group]

    def has_pending_transactional(self, group: str, topic: str, partition: int) -> bool:
        by_producer = self._pending_txn.get(group)
        if by_producer is None:
            return False
        return any((topic, partition) in pending for pending in by_producer.values())

    def groups_with_pending(self, producer_id: int) -> list[str]:
        """Groups holding pending offsets of `producer_id`'s transaction."""
        return [group for group, by_producer in self._pending_txn.items()
                if producer_id in by_producer]

    def has_pending_transactions(self, group: str) -> bool:
        return group in self._pending_txn

    def pending_transactional_keys(self, group: str) -> list[TopicPartitionKey]:
        keys: dict[TopicPartitionKey, None] = {}
        for pending in self._pending_txn.get(group, {}).values():
            keys.update(dict.fromkeys(pending))
        return list(keys)

    # -- retention -----------------------------------------------------------------------

    def expired(
        self,
        group: str,
        now_ms: int,
        retention_ms: int,
        base_timestamp_ms: Callable[[OffsetAndMetadata], int],
        is_subscribed: Callable[[str], bool],
    ) -> tuple[list[TopicPartitionKey], bool]:
        """The group's offsets that have expired, and whether nothing would be left after
        they are gone (Kafka's `cleanupExpiredOffsets`). Topics the group is subscribed to,
        partitions with a write in flight and partitions with a pending transactional
        offset are never expired."""
        expired: list[TopicPartitionKey] = []
        all_expired = True
        for topic, partitions in self._offsets.get(group, {}).items():
            if is_subscribed(topic):
                all_expired = False
                continue
            for partition, value in partitions.items():
                if (value.is_expired(now_ms, base_timestamp_ms(value), retention_ms)
                        and not self.has_write_in_flight(group, topic, partition)
                        and not self.has_pending_transactional(group, topic, partition)):
                    expired.append((topic, partition))
                else:
                    all_expired = False
        if self.has_pending_transactions(group) or self.has_writes_in_flight(group):
            all_expired = False
        return expired, all_expired
