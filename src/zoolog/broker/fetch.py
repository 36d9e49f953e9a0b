"""Fetch: read whole stored batches for each requested partition, or wait for them.

A `FetchOperation` is built once per request (resolving its fetch session, so a parked
fetch does not touch the session twice) and evaluated now and again whenever one of its
partitions gets data, until it can answer (Kafka's rules, `DelayedFetch`):

- at once if `max_wait_ms` <= 0, nothing is asked for, the bytes found reach `min_bytes`,
  or any partition has an error;
- otherwise when enough bytes arrive or the deadline passes (then with whatever there is).

Reads follow Kafka: at most `partition_max_bytes` per partition and `max_bytes` in all,
except that the first partition with data returns at least one whole batch even if it is
larger (so a consumer can never be stuck behind a big batch); `read_committed`
(isolation_level 1) stops at the last stable offset and lists the aborted transactions
that overlap the returned batches (the client drops their records); read_uncommitted
leaves that list null. Records
are `FileSlice`s of the segment files: the runtime sends them with `os.sendfile`.

Errors per partition: UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID from v13, where topics
are named by id), OFFSET_OUT_OF_RANGE, FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for a
stale or future `current_leader_epoch`. Session errors are top-level.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoolog.broker.broker import Broker
from zoolog.broker.fetch_sessions import FetchContext, FetchPartitionSpec, PartitionKey
from zoolog.broker.partition import Partition
from zoolog.logstore.files import FileSlice
from zoolog.logstore.txn_index import AbortedTxn
from zoolog.protocol.kafka._generated.fetch import FetchRequest, FetchResponse
from zoolog.protocol.kafka.errors import Err, KafkaError

TopicResponse = FetchResponse.FetchableTopicResponse
PartitionData = FetchResponse.PartitionData

ZERO_UUID = b"\0" * 16


@dataclass(slots=True)
class _Read:
    spec: FetchPartitionSpec
    error_code: int
    records: FileSlice | None
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    error_message: str | None = None
    aborted: list[AbortedTxn] | None = None


class FetchOperation:
    """One Fetch request being served (see the module docstring)."""

    def __init__(self, broker: Broker, request: FetchRequest, version: int,
                 now_ms: int) -> None:
        self.broker = broker
        self.version = version
        self.by_id = version >= 13
        self.read_committed = request.isolation_level == 1
        self.min_bytes = request.min_bytes
        self.max_bytes = request.max_bytes if version >= 3 else 0x7FFFFFFF
        self.deadline_ms = now_ms + max(0, request.max_wait_ms)
        self.wait = request.max_wait_ms > 0
        requested: list[FetchPartitionSpec] = []
        for topic in request.topics:
            name = topic.topic
            if self.by_id:
                info = broker.metadata.topics_by_id.get(topic.topic_id)
                name = info.name if info is not None else ""
            for p in topic.partitions:
                requested.append(FetchPartitionSpec(
                    name, topic.topic_id, p.partition, p.fetch_offset, p.partition_max_bytes,
                    p.current_leader_epoch, p.log_start_offset, p.last_fetched_epoch))
        if len(requested) > broker.settings.request_partitions_max:
            raise KafkaError(Err.INVALID_REQUEST,
                             f"fetch names {len(requested)} partitions, more than "
                             f"{broker.settings.request_partitions_max}")
        forgotten: list[PartitionKey] = []
        for gone in request.forgotten_topics_data:
            key: object = gone.topic_id if self.by_id else gone.topic
            forgotten.extend((key, index) for index in gone.partitions)
        if version >= 7:
            self.context = broker.fetch_sessions.resolve(
                request.session_id, request.session_epoch, requested, forgotten, self.by_id,
                now_ms)
        else:
            self.context = FetchContext(requested)

    @property
    def partition_keys(self) -> list[tuple[str, int]]:
        """The (topic, partition) pairs this fetch reads (what can wake it)."""
        return [(spec.topic, spec.partition) for spec in self.context.partitions]

    def evaluate(self, now_ms: int) -> FetchResponse | None:
        """The response if the fetch can answer now (or its deadline passed), else None."""
        if self.context.error_code != Err.NONE:
            return FetchResponse(error_code=self.context.error_code, session_id=0)
        reads, total, errors = self._read_all()
        if (not self.wait or not reads or total >= self.min_bytes or errors
                or now_ms >= self.deadline_ms):
            return self._response(reads)
        return None

    def _read_all(self) -> tuple[list[_Read], int, bool]:
        reads: list[_Read] = []
        total = 0
        errors = False
        for spec in self.context.partitions:
            read = self._read(spec, self.max_bytes - total, first=total == 0)
            if read.records is not None:
                total += read.records.size
            if read.error_code != Err.NONE:
                errors = True
            reads.append(read)
        return reads, total, errors

    def _read(self, spec: FetchPartitionSpec, budget: int, first: bool) -> _Read:
        try:
            partition = self._partition(spec)
            _check_leader_epoch(partition, spec.current_leader_epoch)
            if budget <= 0 and not first:
                return _Read(spec, Err.NONE, None, partition.high_watermark,
                             partition.last_stable_offset, partition.log_start_offset)
            result = partition.read(spec.fetch_offset, min(spec.partition_max_bytes, budget),
                                    self.read_committed, min_one_batch=first)
        except KafkaError as exc:
            return _Read(spec, exc.code, None, -1, -1, -1, exc.message)
        return _Read(spec, Err.NONE, result.records, result.high_watermark,
                     result.last_stable_offset, result.log_start_offset, None, result.aborted)

    def _partition(self, spec: FetchPartitionSpec) -> Partition:
        if self.by_id and spec.topic_id not in self.broker.metadata.topics_by_id:
            raise KafkaError(Err.UNKNOWN_TOPIC_ID, "unknown topic id")
        return self.broker.partition(spec.topic, spec.partition)

    def _response(self, reads: list[_Read]) -> FetchResponse:
        response = FetchResponse(session_id=self.context.session_id)
        by_topic: dict[object, TopicResponse] = {}
        for read in reads:
            spec = read.spec
            if not self.context.include(spec, read.error_code, read.records is not None,
                                        read.high_watermark, read.last_stable_offset,
                                        read.log_start_offset):
                continue
            key: object = spec.topic_id if self.by_id else spec.topic
            topic = by_topic.get(key)
            if topic is None:
                topic = by_topic[key] = TopicResponse(topic=spec.topic, topic_id=spec.topic_id)
                response.responses.append(topic)
            data = PartitionData(
                partition_index=spec.partition, error_code=read.error_code,
                high_watermark=read.high_watermark, last_stable_offset=read.last_stable_offset,
                log_start_offset=read.log_start_offset,
                records=read.records if read.records is not None else b"")
            if not self.read_committed:
                data.aborted_transactions = None  # null (None in __init__ means empty)
            elif read.aborted:
                data.aborted_transactions = [
                    FetchResponse.AbortedTransaction(producer_id=a.producer_id,
                                                     first_offset=a.first_offset)
                    for a in read.aborted]
            topic.partitions.append(data)
        return response


def _check_leader_epoch(partition: Partition, current_leader_epoch: int) -> None:
    if current_leader_epoch < 0:
        return
    if current_leader_epoch < partition.leader_epoch:
        raise KafkaError(Err.FENCED_LEADER_EPOCH,
                         f"leader epoch {current_leader_epoch} is older than "
                         f"{partition.leader_epoch}")
    if current_leader_epoch > partition.leader_epoch:
        raise KafkaError(Err.UNKNOWN_LEADER_EPOCH,
                         f"leader epoch {current_leader_epoch} is newer than "
                         f"{partition.leader_epoch}")


check_leader_epoch = _check_leader_epoch
