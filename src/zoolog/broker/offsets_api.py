"""ListOffsets, OffsetForLeaderEpoch and DeleteRecords: questions and changes about where a
partition's log starts and ends.

ListOffsets timestamps: -2 earliest (the log start offset), -1 latest (the high watermark,
or the last stable offset for read_committed: what a consumer with that isolation level
can reach), -3 the record with the largest timestamp (v7+), and any other value the first
offset whose timestamp is at or after it (-1/-1 when there is none, as Kafka answers).
Each answer carries the leader epoch of the batch it points into (v4+).

OffsetForLeaderEpoch answers, for an epoch a consumer last fetched under, the largest epoch
not above it and where it ended (the start of the next epoch, or the log end): the consumer
compares that with its position to detect log truncation (KIP-320).

DeleteRecords moves a partition's log start offset forward (offset -1 = the high
watermark); whole segments below it are deleted. An offset above the high watermark is
OFFSET_OUT_OF_RANGE.
"""

from __future__ import annotations

from zoolog.broker.broker import Broker
from zoolog.broker.fetch import check_leader_epoch
from zoolog.broker.partition import Partition
from zoolog.protocol.kafka._generated.delete_records import (
    DeleteRecordsRequest,
    DeleteRecordsResponse,
)
from zoolog.protocol.kafka._generated.list_offsets import ListOffsetsRequest, ListOffsetsResponse
from zoolog.protocol.kafka._generated.offset_for_leader_epoch import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
)
from zoolog.protocol.kafka.errors import Err, KafkaError

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
MAX_TIMESTAMP = -3


def list_offsets(broker: Broker, request: ListOffsetsRequest, version: int,
                 now_ms: int) -> ListOffsetsResponse:
    response = ListOffsetsResponse()
    read_committed = request.isolation_level == 1
    for topic in request.topics:
        answers: list[ListOffsetsResponse.ListOffsetsPartitionResponse] = []
        response.topics.append(ListOffsetsResponse.ListOffsetsTopicResponse(
            name=topic.name, partitions=answers))
        for p in topic.partitions:
            answer = ListOffsetsResponse.ListOffsetsPartitionResponse(
                partition_index=p.partition_index, timestamp=-1, offset=-1, leader_epoch=-1)
            answers.append(answer)
            try:
                partition = broker.partition(topic.name, p.partition_index)
                check_leader_epoch(partition, p.current_leader_epoch)
                if p.timestamp == MAX_TIMESTAMP and version < 7:
                    raise KafkaError(Err.UNSUPPORTED_VERSION,
                                     "MAX_TIMESTAMP needs ListOffsets v7 or later")
                offset, timestamp = _lookup(partition, p.timestamp, read_committed)
            except KafkaError as exc:
                answer.error_code = exc.code
                continue
            answer.offset = offset
            answer.timestamp = timestamp
            answer.leader_epoch = _epoch_at(partition, offset) if offset >= 0 else -1
    return response


def _lookup(partition: Partition, timestamp: int, read_committed: bool) -> tuple[int, int]:
    if timestamp == EARLIEST_TIMESTAMP:
        return partition.log_start_offset, -1
    if timestamp == LATEST_TIMESTAMP:
        return (partition.last_stable_offset if read_committed
                else partition.high_watermark), -1
    limit = partition.last_stable_offset if read_committed else partition.high_watermark
    if timestamp == MAX_TIMESTAMP:
        found = partition.log.max_timestamp_and_offset()
    elif timestamp < 0:
        raise KafkaError(Err.INVALID_REQUEST, f"unknown special timestamp {timestamp}")
    else:
        found = partition.log.offset_for_timestamp(timestamp)
    if found is None or found.offset >= limit:
        return -1, -1
    return found.offset, found.timestamp


def _epoch_at(partition: Partition, offset: int) -> int:
    """The leader epoch under which `offset` was (or will be) written."""
    epoch = -1
    for entry_epoch, start in partition.log.epochs.entries():
        if start <= offset:
            epoch = entry_epoch
        else:
            break
    return epoch if epoch >= 0 else partition.leader_epoch


def offset_for_leader_epoch(broker: Broker, request: OffsetForLeaderEpochRequest,
                            version: int) -> OffsetForLeaderEpochResponse:
    response = OffsetForLeaderEpochResponse()
    for topic in request.topics:
        results: list[OffsetForLeaderEpochResponse.EpochEndOffset] = []
        response.topics.append(OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult(
            topic=topic.topic, partitions=results))
        for p in topic.partitions:
            result = OffsetForLeaderEpochResponse.EpochEndOffset(
                partition=p.partition, leader_epoch=-1, end_offset=-1)
            results.append(result)
            try:
                partition = broker.partition(topic.topic, p.partition)
                check_leader_epoch(partition, p.current_leader_epoch)
            except KafkaError as exc:
                result.error_code = exc.code
                continue
            epoch, end_offset = partition.log.epochs.end_offset_for(
                p.leader_epoch, partition.log_end_offset)
            result.leader_epoch = epoch
            result.end_offset = end_offset
    return response


def delete_records(broker: Broker, request: DeleteRecordsRequest,
                   now_ms: int) -> tuple[DeleteRecordsResponse, list[Partition]]:
    """The response and the partitions whose log start moved (the runtime flushes their
    checkpoints before answering)."""
    response = DeleteRecordsResponse()
    changed: list[Partition] = []
    for topic in request.topics:
        results: list[DeleteRecordsResponse.DeleteRecordsPartitionResult] = []
        response.topics.append(DeleteRecordsResponse.DeleteRecordsTopicResult(
            name=topic.name, partitions=results))
        for p in topic.partitions:
            result = DeleteRecordsResponse.DeleteRecordsPartitionResult(
                partition_index=p.partition_index, low_watermark=-1)
            results.append(result)
            try:
                partition = broker.partition(topic.name, p.partition_index)
                if broker.metadata.topics[topic.name].internal:
                    raise KafkaError(Err.INVALID_TOPIC_EXCEPTION,
                                     f"Cannot delete records of internal topic {topic.name}")
                offset = partition.high_watermark if p.offset == -1 else p.offset
                if offset < 0 or offset > partition.high_watermark:
                    raise KafkaError(Err.OFFSET_OUT_OF_RANGE,
                                     f"offset {p.offset} is beyond the high watermark "
                                     f"{partition.high_watermark}")
                if offset > partition.log_start_offset:
                    partition.log.delete_records_before(offset)
                    changed.append(partition)
            except KafkaError as exc:
                result.error_code = exc.code
                continue
            result.low_watermark = partition.log_start_offset
    return response, changed
