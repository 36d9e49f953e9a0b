"""Produce: records to batches (cut at about `batch_bytes_max`, one batch per partition
per request), batches to their partitions' leaders, answers back to input order.

Owns `Producer`, the part of `KafkaClient` that writes records, and the partition choice
for records without one (explicit, murmur2 of the key, else round robin). A batch is sent
again only on a retriable error code (it was not written); a connection lost after a
Produce was sent raises, since the batch may or may not be in the log. Never: idempotence,
transactions, batching across `produce` calls.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from zoolog.protocol.kafka import record_batch as rb
from zoolog.protocol.kafka._generated.produce import ProduceRequest, ProduceResponse
from zoolog.protocol.kafka.errors import Err

from .cluster import Cluster
from .connection import _Connection
from .errors import KafkaConnectionError, KafkaResponseError
from .limits import BATCH_BYTES_MAX_DEFAULT, RETRY_BACKOFF_MS_MAX, RETRY_BACKOFF_MS_MIN
from .partitioner import default_partition
from .values import ProducerRecord, RecordMetadata, TopicInfo, TopicPartition
from .versions import _PRODUCE


class Producer(Cluster):
    """Writing records (part of `KafkaClient`)."""

    def choose_partition(self, topic: TopicInfo, record: ProducerRecord) -> int:
        """Explicit partition, else murmur2 of the key, else round robin."""
        count = len(topic.partitions)
        if record.partition is not None:
            if record.partition not in topic.partitions:
                raise ValueError(f"topic {topic.name!r} has no partition {record.partition} "
                                 f"(it has {count})")
            return record.partition
        if record.key is not None:
            return default_partition(record.key, count)
        index = self._round_robin[topic.name]
        self._round_robin[topic.name] = index + 1
        return sorted(topic.partitions)[index % count]

    async def produce(self, topic: str, records: Sequence[ProducerRecord], *, acks: int = -1,
                      codec: int = rb.Codec.NONE, timeout_ms: int = 30_000,
                      batch_bytes_max: int = BATCH_BYTES_MAX_DEFAULT,
                      auto_create: bool = False) -> list[RecordMetadata]:
        """Write `records` to `topic` (acks -1/all, 1 or 0) and return, in input order, where
        each landed (`auto_create`: see `topic()`). Concurrent calls write their requests in
        call order, so the records of a partition land in the order of the calls (retries
        aside, see the module docstring)."""
        if acks not in (-1, 0, 1):
            raise ValueError(f"acks must be -1 (all), 0 or 1, not {acks}")
        if not records:
            return []
        results: list[RecordMetadata | None] = [None] * len(records)
        async with self._produce_order:  # held until the requests are written, not answered
            info = await self.topic(topic, auto_create=auto_create)
            now = _now_ms()
            by_partition: dict[int, list[int]] = defaultdict(list)
            for index, record in enumerate(records):
                by_partition[self.choose_partition(info, record)].append(index)
            batches = [_ProduceBatch.build(partition, chunk, records, now, codec)
                       for partition, indexes in sorted(by_partition.items())
                       for chunk in _cut(indexes, records, batch_bytes_max)]
            sent = await self._send_batches(topic, batches, acks, timeout_ms)
        deadline = time.monotonic() + self.retry_timeout_ms / 1000
        backoff_ms = RETRY_BACKOFF_MS_MIN
        while True:
            retry = await self._collect(topic, sent, results)
            if not retry:
                break
            batches = [batch for batch, _ in retry]
            error = retry[-1][1]
            if time.monotonic() + backoff_ms / 1000 > deadline:
                raise error
            self._forget_topics([topic])
            await asyncio.sleep(backoff_ms / 1000)
            backoff_ms = min(backoff_ms * 2, RETRY_BACKOFF_MS_MAX)
            async with self._produce_order:
                sent = await self._send_batches(topic, batches, acks, timeout_ms)
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    async def _send_batches(self, topic: str, batches: list[_ProduceBatch], acks: int,
                            timeout_ms: int) -> list[_SentProduce]:
        """Write Produce requests for `batches`: one request per leader per round, a round
        holding at most one batch of each partition (Produce v3+ takes one per partition)."""
        rounds: list[dict[int, _ProduceBatch]] = []
        for batch in batches:
            for round_batches in rounds:
                if batch.partition not in round_batches:
                    round_batches[batch.partition] = batch
                    break
            else:
                rounds.append({batch.partition: batch})
        sent: list[_SentProduce] = []
        for round_batches in rounds:
            by_leader: dict[int, list[_ProduceBatch]] = defaultdict(list)
            for partition, batch in sorted(round_batches.items()):
                by_leader[await self._leader(TopicPartition(topic, partition))].append(batch)
            for leader, group in by_leader.items():
                def build(version: int, group: list[_ProduceBatch] = group) -> ProduceRequest:
                    request = ProduceRequest(acks=acks, timeout_ms=timeout_ms, topic_data=[
                        ProduceRequest.TopicProduceData(name=topic, partition_data=[
                            ProduceRequest.PartitionProduceData(index=b.partition,
                                                                records=b.data)
                            for b in group])])
                    request.transactional_id = None
                    return request
                connection = await self._connection(leader)
                version = connection.version(_PRODUCE, self.versions, None)
                future = connection.send(_PRODUCE, version, build(version), ProduceResponse,
                                         expect_response=acks != 0)
                sent.append(_SentProduce(group, future, connection,
                                         timeout_ms + self.request_timeout_ms))
        return sent

    async def _collect(self, topic: str, sent: list[_SentProduce],
                       results: list[RecordMetadata | None]
                       ) -> list[tuple[_ProduceBatch, KafkaResponseError]]:
        """Wait for the answers of `sent`, fill `results`; the batches to send again (with
        their retriable error). A non-retriable error or a lost connection raises."""
        retry: list[tuple[_ProduceBatch, KafkaResponseError]] = []
        failure: BaseException | None = None
        for item in sent:
            try:
                response = await item.connection.wait(item.future, item.timeout_ms)
            except KafkaConnectionError as exc:
                failure = failure or exc
                continue
            answers: dict[int, Any] = {}
            if response is not None:
                for t in response.responses:
                    for p in t.partition_responses:
                        answers[p.index] = p
            for batch in item.batches:
                where = f"topic {topic!r} partition {batch.partition}"
                if response is None:  # acks=0
                    batch.landed(topic, -1, -1, results)
                    continue
                answer = answers.get(batch.partition)
                if answer is None:
                    failure = failure or KafkaResponseError(
                        Err.UNKNOWN_SERVER_ERROR, "the broker did not answer for it", where)
                    continue
                if answer.error_code != Err.NONE:
                    detail = answer.error_message or "; ".join(
                        e.batch_index_error_message or "" for e in answer.record_errors)
                    error = KafkaResponseError(answer.error_code, detail, where)
                    if error.retriable:
                        retry.append((batch, error))
                    else:
                        failure = failure or error
                    continue
                batch.landed(topic, answer.base_offset, answer.log_append_time_ms, results)
        if failure is not None:
            raise failure
        return retry


@dataclass(slots=True)
class _ProduceBatch:
    """One record batch of one partition, and which input records it holds."""

    partition: int
    indexes: list[int]
    timestamps: list[int]
    data: bytes

    @classmethod
    def build(cls, partition: int, indexes: list[int], records: Sequence[ProducerRecord],
              now_ms: int, codec: int) -> _ProduceBatch:
        stamps: list[int] = []
        for i in indexes:
            stamp = records[i].timestamp_ms
            stamps.append(now_ms if stamp is None else stamp)
        base = min(stamps)
        data = rb.build_batch(
            [rb.Record(delta, stamp - base, records[i].key, records[i].value,
                       tuple(records[i].headers))
             for delta, (i, stamp) in enumerate(zip(indexes, stamps, strict=True))],
            base_timestamp=base, codec=codec)
        return cls(partition, indexes, stamps, data)

    def landed(self, topic: str, base_offset: int, log_append_time_ms: int,
               results: list[RecordMetadata | None]) -> None:
        for delta, index in enumerate(self.indexes):
            offset = base_offset + delta if base_offset >= 0 else -1
            stamp = log_append_time_ms if log_append_time_ms >= 0 else self.timestamps[delta]
            results[index] = RecordMetadata(topic, self.partition, offset, stamp)


class _SentProduce(NamedTuple):
    batches: list[_ProduceBatch]
    future: asyncio.Future[Any]
    connection: _Connection
    timeout_ms: int


def _cut(indexes: list[int], records: Sequence[ProducerRecord], bytes_max: int
         ) -> list[list[int]]:
    """Split a partition's record indexes into batches of about `bytes_max` bytes."""
    out: list[list[int]] = [[]]
    size = 0
    for index in indexes:
        record = records[index]
        estimate = 24 + len(record.key or b"") + len(record.value or b"") + sum(
            len(name) + len(value or b"") + 4 for name, value in record.headers)
        if out[-1] and size + estimate > bytes_max:
            out.append([])
            size = 0
        out[-1].append(index)
        size += estimate
    return out


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
