"""Produce: validate each partition's batches, append them, answer per partition.

What the acks mean on one node (docs/ARCHITECTURE.md, "Durability"):

- `acks=0`: appended like acks=1, but no response is sent; if an append fails the runtime
  closes the connection (Kafka's signal to the producer to refresh its metadata);
- `acks=1`: answered once the batch is written to the log (the OS page cache): it survives
  the broker process being killed, not a power loss before the next flush;
- `acks=all` (-1): answered once the batch is fsynced; with one replica the ISR is the
  leader, so `min.insync.replicas` above 1 refuses the write with NOT_ENOUGH_REPLICAS.

Transactional batches (KIP-98) are checked with the transaction coordinator before they are
appended (`Broker.verify_txn`, KIP-890's server-side verification): the producer's
transaction must be ongoing, at its epoch, and hold the partition; a stale epoch is
INVALID_PRODUCER_EPOCH (what librdkafka treats as fenced), a partition outside the
transaction INVALID_TXN_STATE. So a zombie's late write can neither land in a finished
transaction nor open a hanging one.

A failure in one partition (unknown, invalid batch, fenced producer, ...) is that
partition's error code; the others are appended. The handler returns the response and the
partitions the runtime must flush before sending it (acks=all).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zoolog.broker.broker import Broker
from zoolog.broker.partition import Partition
from zoolog.broker.validation import RecordError, validate
from zoolog.protocol.kafka._generated.produce import ProduceRequest, ProduceResponse
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.protocol.kafka.record_batch import BatchHeader

Response = ProduceResponse
PartitionResponse = ProduceResponse.PartitionProduceResponse
TopicResponse = ProduceResponse.TopicProduceResponse


@dataclass(slots=True)
class ProduceResult:
    response: ProduceResponse
    flush: list[Partition] = field(default_factory=list)
    """Partitions to fsync before answering (acks=all)."""
    failed: bool = False
    """Some partition failed (acks=0: the runtime closes the connection)."""


def unknown_topics(broker: Broker, request: ProduceRequest) -> list[str]:
    """Topics the request names that do not exist (the runtime may auto-create them)."""
    return [t.name for t in request.topic_data if t.name not in broker.metadata.topics]


def produce(broker: Broker, request: ProduceRequest, version: int, now_ms: int) -> ProduceResult:
    acks = request.acks
    result = ProduceResult(ProduceResponse())
    topics = result.response.responses
    flush: dict[int, Partition] = {}
    if acks not in (0, 1, -1):
        for topic in request.topic_data:
            topics.append(TopicResponse(name=topic.name, partition_responses=[
                _failure(p.index, KafkaError(Err.INVALID_REQUIRED_ACKS,
                                             f"acks must be -1, 0 or 1, not {acks}"))
                for p in topic.partition_data]))
        result.failed = True
        return result
    for topic in request.topic_data:
        answers: list[PartitionResponse] = []
        topics.append(TopicResponse(name=topic.name, partition_responses=answers))
        for data in topic.partition_data:
            try:
                partition = _target(broker, topic.name, data.index, request, acks)
                if data.records is None:
                    raise KafkaError(Err.INVALID_RECORD, "null records")
                valid = validate(data.records, broker.rules(topic.name), now_ms)
                _verify_transactional(broker, request.transactional_id, topic.name,
                                      data.index, valid.batches)
                appended = partition.append_client(valid.batches, valid.log_append_time_ms,
                                                   now_ms)
            except KafkaError as exc:
                answers.append(_failure(data.index, exc))
                result.failed = True
                continue
            if acks == -1:
                flush[id(partition)] = partition
            answers.append(PartitionResponse(
                index=data.index, base_offset=appended.base_offset,
                log_append_time_ms=appended.log_append_time_ms,
                log_start_offset=appended.log_start_offset))
    result.flush = list(flush.values())
    return result


def _target(broker: Broker, topic: str, index: int, request: ProduceRequest,
            acks: int) -> Partition:
    info = broker.metadata.topics.get(topic)
    if info is None:
        raise KafkaError(Err.UNKNOWN_TOPIC_OR_PARTITION,
                         f"This server does not host this topic-partition: {topic}-{index}")
    if info.internal:
        raise KafkaError(Err.INVALID_TOPIC_EXCEPTION,
                         f"Cannot append to internal topic {topic}")
    partition = broker.partition(topic, index)
    if acks == -1:
        min_isr = broker.topic_settings(topic)["min.insync.replicas"]
        isr = len(info.partitions[index].isr)
        if isinstance(min_isr, int) and isr < min_isr:
            raise KafkaError(Err.NOT_ENOUGH_REPLICAS,
                             f"The size of the current ISR {isr} is insufficient to satisfy "
                             f"the min.isr requirement of {min_isr} for partition "
                             f"{topic}-{index}")
    return partition


def _verify_transactional(broker: Broker, transactional_id: str | None, topic: str,
                          index: int, batches: list[tuple[memoryview, BatchHeader]]) -> None:
    for _, header in batches:
        if not header.is_transactional:
            continue
        if transactional_id is None:
            raise KafkaError(Err.INVALID_RECORD,
                             "a transactional batch in a produce request without a "
                             "transactional id")
        verify = broker.verify_txn
        if verify is None:
            raise KafkaError(Err.COORDINATOR_NOT_AVAILABLE,
                             "the transaction coordinator is not running")
        code, message = verify(transactional_id, header.producer_id, header.producer_epoch,
                               topic, index)
        if code != Err.NONE:
            raise KafkaError(code, message)


def _failure(index: int, exc: KafkaError) -> PartitionResponse:
    answer = PartitionResponse(index=index, error_code=exc.code, base_offset=-1,
                               log_append_time_ms=-1, log_start_offset=-1,
                               error_message=exc.message or None)
    if isinstance(exc, RecordError):
        answer.record_errors = [ProduceResponse.BatchIndexAndErrorMessage(
            batch_index=exc.batch_index, batch_index_error_message=exc.message)]
    return answer
