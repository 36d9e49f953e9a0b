"""The offset requests: OffsetCommit (validated against the group's generation, persisted
before it is answered), TxnOffsetCommit (a transaction's offsets, pending until its
marker), OffsetFetch (require_stable: UNSTABLE_OFFSET_COMMIT while a transaction holds the
partition or an offset write to it is not durable yet) and OffsetDelete.

Owns `OffsetHandlers` (part of `GroupCoordinator`). Offsets become visible only when
their records are durable (`GroupCoordinator.persisted`). Never: I/O, storing offsets
itself (the `OffsetStore` does), expiring them (see `retention.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoolog.protocol.kafka._generated.offset_commit import OffsetCommitRequest, OffsetCommitResponse
from zoolog.protocol.kafka._generated.offset_delete import OffsetDeleteRequest, OffsetDeleteResponse
from zoolog.protocol.kafka._generated.offset_fetch import OffsetFetchRequest, OffsetFetchResponse
from zoolog.protocol.kafka._generated.txn_offset_commit import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from zoolog.protocol.kafka.errors import Err

from .group import GroupState
from .offsets import OffsetAndMetadata
from .outputs import Reply, _OffsetUpdate
from .records import offset_commit_key, offset_commit_value
from .state import CoordinatorState

_S = GroupState


class OffsetHandlers(CoordinatorState):
    """OffsetCommit, OffsetFetch and OffsetDelete (part of `GroupCoordinator`)."""

    # -- OffsetCommit ----------------------------------------------------------------------

    def offset_commit(self, token: object, request: OffsetCommitRequest, version: int,
                      now_ms: int) -> None:
        self._clock(now_ms)
        group_id = request.group_id
        generation = request.generation_id_or_member_epoch if version >= 1 else -1
        member_id = request.member_id if version >= 1 else ""
        instance_id = request.group_instance_id if version >= 7 else None
        group = self._groups.get(group_id)
        if group is None:
            if generation < 0:
                error = Err.NONE  # a simple group: created when the commit is durable
            else:
                error = Err.GROUP_ID_NOT_FOUND if version >= 9 else Err.ILLEGAL_GENERATION
        else:
            error = group.validate_offset_commit(member_id, instance_id, generation)
        if error != Err.NONE:
            self._reply(token, _commit_response(request, lambda _p: error))
            return
        if group is not None and group.state in (_S.STABLE, _S.PREPARING_REBALANCE):
            member = group.members.get(member_id)
            if member is not None:
                self._schedule_heartbeat(group, member, now_ms)
        retention_ms = request.retention_time_ms if 2 <= version <= 4 else -1
        expire_ms = None if retention_ms == -1 else now_ms + retention_ms
        def value_of(p: Any) -> OffsetAndMetadata:
            commit_ms = p.commit_timestamp if version == 1 and p.commit_timestamp != -1 \
                else now_ms
            leader_epoch = p.committed_leader_epoch if version >= 6 else -1
            return OffsetAndMetadata(p.committed_offset, leader_epoch,
                                     p.committed_metadata or "", commit_ms, expire_ms)
        records, updates, codes = self._offset_records(group_id, request.topics, value_of)
        response = _commit_response(request, lambda key: codes.get(key, Err.NONE))
        if not records:
            self._reply(token, response)
            return
        self._emit_persist(group_id, records, [Reply(token, response)], updates=updates)

    # -- TxnOffsetCommit --------------------------------------------------------------------

    def txn_offset_commit(self, token: object, request: TxnOffsetCommitRequest, version: int,
                          now_ms: int) -> None:
        """Offsets a transaction commits (sent by the producer, KIP-98): written to
        `__consumer_offsets` as that producer's transactional records, pending (invisible
        to OffsetFetch; UNSTABLE_OFFSET_COMMIT with require_stable) until its COMMIT marker
        makes them the group's committed offsets, or its ABORT marker drops them. v3+
        carries the consumer's generation and member id, checked like OffsetCommit's when
        given (Kafka's KIP-447 fencing of zombie consumers); without them, as in v0-2, the
        commit is accepted whatever the group's state (Kafka's
        `validateTransactionalOffsetCommit`)."""
        self._clock(now_ms)
        group_id = request.group_id
        generation = request.generation_id if version >= 3 else -1
        member_id = request.member_id if version >= 3 else ""
        instance_id = request.group_instance_id if version >= 3 else None
        group = self._groups.get(group_id)
        if group is None:
            # No generation: a simple group, created when the records are durable.
            error = Err.NONE if generation < 0 else Err.ILLEGAL_GENERATION
        else:
            error = group.validate_offset_commit(member_id, instance_id, generation,
                                                 transactional=True)
        if error != Err.NONE:
            self._reply(token, _txn_commit_response(request, lambda _p: error))
            return
        def value_of(p: Any) -> OffsetAndMetadata:
            leader_epoch = p.committed_leader_epoch if version >= 2 else -1
            return OffsetAndMetadata(p.committed_offset, leader_epoch,
                                     p.committed_metadata or "", now_ms, None)
        records, updates, codes = self._offset_records(group_id, request.topics, value_of)
        response = _txn_commit_response(request, lambda key: codes.get(key, Err.NONE))
        if not records:
            self._reply(token, response)
            return
        self._emit_persist(group_id, records, [Reply(token, response)], updates=updates,
                           producer_id=request.producer_id,
                           producer_epoch=request.producer_epoch)

    def _offset_records(self, group_id: str, topics: Any,
                        value_of: Callable[[Any], OffsetAndMetadata],
                        ) -> tuple[list[tuple[bytes, bytes | None]], list[_OffsetUpdate],
                                   dict[tuple[str, int], int]]:
        """The records and offset updates a commit of `topics` writes, and the partitions
        refused (metadata over offset.metadata.max.bytes)."""
        max_length = self.config.offset_metadata_max_bytes
        records: list[tuple[bytes, bytes | None]] = []
        updates: list[_OffsetUpdate] = []
        codes: dict[tuple[str, int], int] = {}
        for topic in topics:
            for p in topic.partitions:
                metadata = "" if p.committed_metadata is None else p.committed_metadata
                if _java_length(metadata) > max_length:
                    codes[(topic.name, p.partition_index)] = Err.OFFSET_METADATA_TOO_LARGE
                    continue
                value = value_of(p)
                records.append((
                    offset_commit_key(group_id, topic.name, p.partition_index),
                    offset_commit_value(value.offset, value.leader_epoch, value.metadata,
                                        value.commit_timestamp_ms, value.expire_timestamp_ms),
                ))
                updates.append((group_id, topic.name, p.partition_index, value))
        return records, updates, codes

    # -- OffsetFetch -----------------------------------------------------------------------

    def offset_fetch(self, token: object, request: OffsetFetchRequest, version: int,
                     now_ms: int) -> None:
        self._clock(now_ms)
        require_stable = request.require_stable if version >= 7 else False
        if version >= 8:
            groups = []
            for g in request.groups:
                wanted = None if g.topics is None else [
                    (t.name, list(t.partition_indexes)) for t in g.topics]
                topics = self._fetch(g.group_id, wanted, require_stable)
                groups.append(OffsetFetchResponse.OffsetFetchResponseGroup(
                    group_id=g.group_id,
                    topics=[OffsetFetchResponse.OffsetFetchResponseTopics(
                        name=name,
                        partitions=[OffsetFetchResponse.OffsetFetchResponsePartitions(
                            partition_index=partition, committed_offset=offset,
                            committed_leader_epoch=epoch, metadata=metadata,
                            error_code=code)
                            for partition, offset, epoch, metadata, code in partitions])
                        for name, partitions in topics]))
            self._reply(token, OffsetFetchResponse(groups=groups))
            return
        wanted = None if request.topics is None else [
            (t.name, list(t.partition_indexes)) for t in request.topics]
        topics = self._fetch(request.group_id, wanted, require_stable)
        self._reply(token, OffsetFetchResponse(
            error_code=Err.NONE,
            topics=[OffsetFetchResponse.OffsetFetchResponseTopic(
                name=name,
                partitions=[OffsetFetchResponse.OffsetFetchResponsePartition(
                    partition_index=partition, committed_offset=offset,
                    committed_leader_epoch=epoch, metadata=metadata, error_code=code)
                    for partition, offset, epoch, metadata, code in partitions])
                for name, partitions in topics]))

    def _fetch(
        self, group_id: str, wanted: list[tuple[str, list[int]]] | None, require_stable: bool
    ) -> list[tuple[str, list[tuple[int, int, int, str, int]]]]:
        """(topic, [(partition, offset, leader epoch, metadata, error)]) for the wanted
        partitions (None: every committed one). Nothing committed: offset -1, no error."""
        group = self._groups.get(group_id)
        known = group is not None and not group.is_in(_S.DEAD)
        offsets = self.offsets
        out: list[tuple[str, list[tuple[int, int, int, str, int]]]] = []

        def entry(topic: str, partition: int,
                  value: OffsetAndMetadata | None) -> tuple[int, int, int, str, int]:
            if require_stable and (offsets.has_pending_transactional(group_id, topic, partition)
                                   or offsets.has_write_in_flight(group_id, topic, partition)):
                # Kafka's `hasPendingOffsetCommitsForTopicPartition`: a transaction's offset
                # before its marker, or any offset whose record is not durable yet.
                return partition, -1, -1, "", Err.UNSTABLE_OFFSET_COMMIT
            if value is None:
                return partition, -1, -1, "", Err.NONE
            return partition, value.offset, value.leader_epoch, value.metadata, Err.NONE

        if wanted is None:
            if not known:
                return out
            for topic, partitions in sorted(offsets.topics(group_id).items()):
                out.append((topic, [entry(topic, p, v) for p, v in sorted(partitions.items())]))
            return out
        for topic, indexes in wanted:
            out.append((topic, [entry(topic, p, offsets.get(group_id, topic, p) if known
                                      else None) for p in indexes]))
        return out

    def offset_delete(self, token: object, request: OffsetDeleteRequest, version: int,
                      now_ms: int) -> None:
        self._clock(now_ms)
        group_id = request.group_id
        group = self._groups.get(group_id)
        if group is None or group.is_in(_S.DEAD):
            self._reply(token, OffsetDeleteResponse(error_code=Err.GROUP_ID_NOT_FOUND))
            return
        if not group.is_in(_S.EMPTY) and not group.uses_consumer_protocol():
            self._reply(token, OffsetDeleteResponse(error_code=Err.NON_EMPTY_GROUP))
            return
        records: list[tuple[bytes, bytes | None]] = []
        updates: list[_OffsetUpdate] = []
        topics = []
        for topic in request.topics:
            subscribed = group.is_subscribed_to_topic(topic.name)
            partitions = []
            for p in topic.partitions:
                index = p.partition_index
                if subscribed:
                    code = Err.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    code = Err.NONE
                    if (self.offsets.get(group_id, topic.name, index) is not None
                            or self.offsets.has_write_in_flight(group_id, topic.name, index)
                            or self.offsets.has_pending_transactional(group_id, topic.name,
                                                                      index)):
                        records.append((offset_commit_key(group_id, topic.name, index), None))
                        updates.append((group_id, topic.name, index, None))
                partitions.append(OffsetDeleteResponse.OffsetDeleteResponsePartition(
                    partition_index=index, error_code=code))
            topics.append(OffsetDeleteResponse.OffsetDeleteResponseTopic(
                name=topic.name, partitions=partitions))
        reply = Reply(token, OffsetDeleteResponse(error_code=Err.NONE, topics=topics))
        if not records:
            self._output.append(reply)
            return
        self._emit_persist(group_id, records, [reply], updates=updates)


def _java_length(text: str) -> int:
    """Java's `String.length()`: UTF-16 code units (what offset.metadata.max.bytes checks)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _commit_response(request: OffsetCommitRequest,
                     code: Callable[[tuple[str, int]], int]) -> OffsetCommitResponse:
    return OffsetCommitResponse(topics=[
        OffsetCommitResponse.OffsetCommitResponseTopic(
            name=topic.name,
            partitions=[OffsetCommitResponse.OffsetCommitResponsePartition(
                partition_index=p.partition_index, error_code=code((topic.name, p.partition_index)))
                for p in topic.partitions])
        for topic in request.topics])


def _txn_commit_response(request: TxnOffsetCommitRequest,
                         code_for: Callable[[tuple[str, int]], int]) -> TxnOffsetCommitResponse:
    return TxnOffsetCommitResponse(topics=[
        TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic(name=topic.name, partitions=[
            TxnOffsetCommitResponse.TxnOffsetCommitResponsePartition(
                partition_index=p.partition_index,
                error_code=code_for((topic.name, p.partition_index)))
            for p in topic.partitions])
        for topic in request.topics])
