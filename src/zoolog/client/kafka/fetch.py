"""Reading logs: ListOffsets (offsets by EARLIEST, LATEST or timestamp) and Fetch (one full
fetch per leader, concurrently), and the decoding of fetched batches into records.

Owns `Fetcher`, the part of `KafkaClient` that reads partitions, and `_fetched` (records of
one fetched partition at or after a position; aborted transactions dropped in
read_committed; control batches skipped). Both requests are retried on leader changes.
Never: fetch sessions (every fetch is a full fetch), follower fetching, resetting an
out-of-range position (OFFSET_OUT_OF_RANGE is reported per partition).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from zoolog.protocol.kafka import record_batch as rb
from zoolog.protocol.kafka._generated.fetch import FetchRequest, FetchResponse
from zoolog.protocol.kafka._generated.list_offsets import (
    ListOffsetsRequest,
    ListOffsetsResponse,
)
from zoolog.protocol.kafka.errors import Err

from .cluster import Cluster
from .errors import KafkaResponseError, _check
from .limits import (
    DECOMPRESSED_BYTES_MAX,
    FETCH_MAX_BYTES_DEFAULT,
    PARTITION_FETCH_MAX_BYTES_DEFAULT,
)
from .values import ConsumerRecord, FetchedPartition, OffsetAndTimestamp, TopicPartition
from .versions import _FETCH, _LIST_OFFSETS

EARLIEST = -2
"""ListOffsets timestamp for the log start offset."""
LATEST = -1
"""ListOffsets timestamp for the log end offset (the last stable offset in read_committed)."""
READ_UNCOMMITTED = 0
READ_COMMITTED = 1

_ZERO_UUID = bytes(16)


class Fetcher(Cluster):
    """Reading partitions (part of `KafkaClient`)."""

    async def list_offsets(self, topic: str, spec: int, partitions: Iterable[int] | None = None,
                           *, isolation: int = READ_UNCOMMITTED
                           ) -> dict[int, OffsetAndTimestamp]:
        """Per partition (default: all of the topic's): the offset for `spec` — EARLIEST,
        LATEST or a timestamp in ms (the first offset whose timestamp is at or after it; -1
        when there is none)."""
        wanted = await self._partitions_of(topic, partitions)
        out: dict[int, OffsetAndTimestamp] = {}

        async def once() -> dict[int, OffsetAndTimestamp]:
            by_leader: dict[int, list[int]] = defaultdict(list)
            for p in wanted:
                if p not in out:
                    by_leader[await self._leader(TopicPartition(topic, p))].append(p)
            for leader, parts in by_leader.items():
                def build(version: int, parts: list[int] = parts) -> ListOffsetsRequest:
                    return ListOffsetsRequest(replica_id=-1, isolation_level=isolation, topics=[
                        ListOffsetsRequest.ListOffsetsTopic(name=topic, partitions=[
                            ListOffsetsRequest.ListOffsetsPartition(partition_index=p,
                                                                    timestamp=spec)
                            for p in parts])])
                response, _ = await self._call(leader, _LIST_OFFSETS, build, ListOffsetsResponse)
                for t in response.topics:
                    for p in t.partitions:
                        _check(p.error_code, context=f"topic {topic!r} partition "
                                                     f"{p.partition_index}")
                        out[p.partition_index] = OffsetAndTimestamp(p.offset, p.timestamp)
            return out
        return await self._retrying(once, on_retry=lambda: self._forget_topics([topic]))

    async def offset_range(self, topic: str, partitions: Iterable[int] | None = None, *,
                           isolation: int = READ_UNCOMMITTED) -> dict[int, tuple[int, int]]:
        """partition -> (log start offset, log end offset)."""
        wanted = None if partitions is None else list(partitions)
        starts, ends = await asyncio.gather(
            self.list_offsets(topic, EARLIEST, wanted, isolation=isolation),
            self.list_offsets(topic, LATEST, wanted, isolation=isolation))
        return {p: (starts[p].offset, ends[p].offset) for p in ends}

    # --- fetch -----------------------------------------------------------------------------

    async def fetch(self, positions: Mapping[TopicPartition, int], *, max_wait_ms: int = 500,
                    min_bytes: int = 1, max_bytes: int = FETCH_MAX_BYTES_DEFAULT,
                    partition_max_bytes: int = PARTITION_FETCH_MAX_BYTES_DEFAULT,
                    isolation: int = READ_UNCOMMITTED) -> dict[TopicPartition, FetchedPartition]:
        """One fetch from each leader of `positions` (partition -> next offset to read),
        concurrently. Per-partition errors (OFFSET_OUT_OF_RANGE, ...) come back in
        `FetchedPartition.error`; a leader change is retried."""
        out: dict[TopicPartition, FetchedPartition] = {}

        async def once() -> dict[TopicPartition, FetchedPartition]:
            by_leader: dict[int, list[TopicPartition]] = defaultdict(list)
            for tp in positions:
                if tp not in out:
                    by_leader[await self._leader(tp)].append(tp)
            fetched = await asyncio.gather(*(
                self._fetch_from(leader, {tp: positions[tp] for tp in tps}, max_wait_ms,
                                 min_bytes, max_bytes, partition_max_bytes, isolation)
                for leader, tps in by_leader.items()))
            retry: KafkaResponseError | None = None
            for part in fetched:
                for tp, result in part.items():
                    if result.error is not None and result.error.retriable:
                        retry = result.error
                        continue
                    out[tp] = result
            if retry is not None:
                raise retry
            return out
        return await self._retrying(
            once, on_retry=lambda: self._forget_topics({tp.topic for tp in positions}))

    async def _fetch_from(self, leader: int, positions: dict[TopicPartition, int],
                          max_wait_ms: int, min_bytes: int, max_bytes: int,
                          partition_max_bytes: int, isolation: int
                          ) -> dict[TopicPartition, FetchedPartition]:
        by_topic: dict[str, list[TopicPartition]] = defaultdict(list)
        for tp in sorted(positions):
            by_topic[tp.topic].append(tp)
        ids = {name: (self._topics[name].topic_id if name in self._topics else _ZERO_UUID)
               for name in by_topic}
        names_by_id = {topic_id: name for name, topic_id in ids.items()}
        max_version = None if all(i != _ZERO_UUID for i in ids.values()) else 12

        def build(version: int) -> FetchRequest:
            return FetchRequest(
                replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes,
                max_bytes=max_bytes, isolation_level=isolation, session_id=0,
                session_epoch=-1, topics=[FetchRequest.FetchTopic(
                    topic=name, topic_id=ids[name], partitions=[FetchRequest.FetchPartition(
                        partition=tp.partition, fetch_offset=positions[tp],
                        partition_max_bytes=partition_max_bytes) for tp in tps])
                    for name, tps in by_topic.items()])
        response, version = await self._call(
            leader, _FETCH, build, FetchResponse, max_version=max_version,
            timeout_ms=self.request_timeout_ms + max_wait_ms)
        if response.error_code != Err.NONE:
            error = KafkaResponseError(response.error_code, context="fetch")
            return {tp: FetchedPartition(tp.topic, tp.partition, error, -1, -1, -1, [],
                                         position) for tp, position in positions.items()}
        out: dict[TopicPartition, FetchedPartition] = {}
        for t in response.responses:
            name = names_by_id.get(t.topic_id, t.topic) if version >= 13 else t.topic
            for p in t.partitions:
                tp = TopicPartition(name, p.partition_index)
                if tp not in positions:
                    continue
                out[tp] = _fetched(tp, positions[tp], p, isolation)
        for tp, position in positions.items():
            if tp not in out:
                out[tp] = FetchedPartition(tp.topic, tp.partition, None, -1, -1, -1, [],
                                           position)
        return out


def _fetched(tp: TopicPartition, position: int, p: Any, isolation: int) -> FetchedPartition:
    """Records of one partition of a FetchResponse at or after `position`; aborted
    transactions dropped in read_committed; control batches skipped."""
    error = None
    if p.error_code != Err.NONE:
        error = KafkaResponseError(p.error_code, context=f"topic {tp.topic!r} partition "
                                                         f"{tp.partition} offset {position}")
        return FetchedPartition(tp.topic, tp.partition, error, p.high_watermark,
                                p.last_stable_offset, p.log_start_offset, [], position)
    records: list[ConsumerRecord] = []
    next_offset = position
    data = p.records
    aborted = sorted((a.first_offset, a.producer_id) for a in (p.aborted_transactions or ()))
    active_aborted: set[int] = set()
    if data:
        for pos, header in rb.iter_batches(data):
            if header.next_offset <= position:
                continue
            if isolation == READ_COMMITTED:
                while aborted and aborted[0][0] <= header.last_offset:
                    active_aborted.add(aborted.pop(0)[1])
            next_offset = max(next_offset, header.next_offset)
            batch = memoryview(data)[pos : pos + header.size]
            if header.is_control:
                if isolation == READ_COMMITTED and header.producer_id in active_aborted:
                    for record in rb.batch_records(batch, DECOMPRESSED_BYTES_MAX):
                        if rb.control_type(record) == rb.CONTROL_ABORT:
                            active_aborted.discard(header.producer_id)
                continue
            if (isolation == READ_COMMITTED and header.is_transactional
                    and header.producer_id in active_aborted):
                continue
            log_append = bool(header.attributes & rb.ATTR_LOG_APPEND_TIME)
            for record in rb.batch_records(batch, DECOMPRESSED_BYTES_MAX):
                offset = header.base_offset + record.offset_delta
                if offset < position:
                    continue
                stamp = header.max_timestamp if log_append else \
                    header.base_timestamp + record.timestamp_delta
                records.append(ConsumerRecord(tp.topic, tp.partition, offset, stamp, log_append,
                                              record.key, record.value, record.headers))
    return FetchedPartition(tp.topic, tp.partition, None, p.high_watermark,
                            p.last_stable_offset, p.log_start_offset, records, next_offset)
