"""The broker's request handlers as functions over a `Broker` (no sockets): Produce, Fetch,
ListOffsets, OffsetForLeaderEpoch, DeleteRecords, Metadata, the topic and config plans,
`error_responses.error_response` for every advertised API, topic configs and the znode
values. Requests go through the real codecs (`wire`) at the version under test, and
responses are encoded at that version too, as the runtime would send them."""

from __future__ import annotations

import inspect
import json
import re
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.broker.helpers import (
    START_MS,
    append,
    client_batch,
    new_broker,
    slice_bytes,
    topic_info,
    wire,
)

from zoolog.broker import configs_api, topics_api, znodes
from zoolog.broker.api_versions import ADVERTISED
from zoolog.broker.broker import Broker
from zoolog.broker.cluster_api import metadata, topics_to_create
from zoolog.broker.error_responses import error_response
from zoolog.broker.fetch import FetchOperation
from zoolog.broker.offsets_api import delete_records, list_offsets, offset_for_leader_epoch
from zoolog.broker.produce import produce, unknown_topics
from zoolog.broker.settings import BrokerSettings
from zoolog.broker.topic_config import (
    TOPIC_CONFIGS,
    ConfigDef,
    ConfigSource,
    ConfigType,
    effective,
    validate_topic_configs,
)
from zoolog.broker.znodes import BrokerRegistration
from zoolog.protocol.kafka._generated import REQUESTS, RESPONSES
from zoolog.protocol.kafka._generated.alter_configs import AlterConfigsRequest
from zoolog.protocol.kafka._generated.create_partitions import CreatePartitionsRequest
from zoolog.protocol.kafka._generated.create_topics import CreateTopicsRequest
from zoolog.protocol.kafka._generated.delete_records import DeleteRecordsRequest
from zoolog.protocol.kafka._generated.delete_topics import DeleteTopicsRequest
from zoolog.protocol.kafka._generated.describe_configs import DescribeConfigsRequest
from zoolog.protocol.kafka._generated.fetch import FetchRequest, FetchResponse
from zoolog.protocol.kafka._generated.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
)
from zoolog.protocol.kafka._generated.list_offsets import ListOffsetsRequest
from zoolog.protocol.kafka._generated.metadata import MetadataRequest, MetadataResponse
from zoolog.protocol.kafka._generated.offset_for_leader_epoch import (
    OffsetForLeaderEpochRequest,
)
from zoolog.protocol.kafka._generated.produce import ProduceRequest, ProduceResponse
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.protocol.kafka.record_batch import Record, build_batch, iter_batches
from zoolog.testing.log_files import MemoryLogFileSystem

T0 = START_MS


def encodes(response: Any, version: int) -> Any:
    """The response as the client decodes it after the broker encoded it at `version`."""
    data = response.to_bytes(version)
    decoded, pos = type(response).decode(memoryview(data), 0, version)
    assert pos == len(data)
    return decoded


# ============================================================================ Produce


def produce_request(data: dict[str, dict[int, bytes | None]], acks: int = -1,
                    transactional_id: str | None = None) -> ProduceRequest:
    return ProduceRequest(
        transactional_id=transactional_id, acks=acks, timeout_ms=30_000,
        topic_data=[ProduceRequest.TopicProduceData(name=name, partition_data=[
            ProduceRequest.PartitionProduceData(index=index, records=raw)
            for index, raw in parts.items()]) for name, parts in data.items()])


def answers(response: ProduceResponse) -> dict[tuple[str, int],
                                                ProduceResponse.PartitionProduceResponse]:
    return {(t.name, p.index): p for t in response.responses for p in t.partition_responses}


@pytest.mark.parametrize("version", [3, 7, 9])
@pytest.mark.parametrize("acks", [0, 1, -1])
def test_produce_appends_for_every_valid_acks(version: int, acks: int) -> None:
    broker = new_broker(topic_info("t", partitions=2))
    request = produce_request({"t": {0: client_batch(3), 1: client_batch(2)}}, acks)
    result = produce(broker, wire(request, version), version, T0)
    got = answers(result.response)
    assert not result.failed
    assert [(got[("t", i)].error_code, got[("t", i)].base_offset) for i in (0, 1)] == \
        [(0, 0), (0, 0)]
    assert got[("t", 0)].log_append_time_ms == -1 and got[("t", 0)].log_start_offset == 0
    assert broker.partition("t", 0).log_end_offset == 3
    assert broker.partition("t", 1).log_end_offset == 2
    if acks == -1:
        assert {id(p) for p in result.flush} == {id(broker.partition("t", i)) for i in (0, 1)}
    else:
        assert result.flush == []
    encodes(result.response, version)
    again = produce(broker, wire(request, version), version, T0)
    assert answers(again.response)[("t", 0)].base_offset == 3


@pytest.mark.parametrize("acks", [2, -2, 5])
def test_other_acks_are_invalid_required_acks(acks: int) -> None:
    broker = new_broker(topic_info("t", partitions=2))
    request = produce_request({"t": {0: client_batch(1), 1: client_batch(1)},
                               "nope": {0: client_batch(1)}}, acks)
    result = produce(broker, wire(request, 9), 9, T0)
    assert result.failed and result.flush == []
    assert {p.error_code for p in answers(result.response).values()} == \
        {Err.INVALID_REQUIRED_ACKS}
    assert len(answers(result.response)) == 3
    assert broker.partition("t", 0).log_end_offset == 0
    encodes(result.response, 9)


def test_an_unknown_topic_or_partition_fails_alone() -> None:
    broker = new_broker(topic_info("t"))
    request = produce_request({"t": {0: client_batch(1), 3: client_batch(1)},
                               "nope": {0: client_batch(1)}}, 1)
    assert unknown_topics(broker, request) == ["nope"]
    result = produce(broker, wire(request, 9), 9, T0)
    got = answers(result.response)
    assert result.failed
    assert got[("t", 0)].error_code == 0
    assert got[("t", 3)].error_code == Err.UNKNOWN_TOPIC_OR_PARTITION
    assert got[("nope", 0)].error_code == Err.UNKNOWN_TOPIC_OR_PARTITION
    assert got[("nope", 0)].base_offset == -1
    assert broker.partition("t", 0).log_end_offset == 1


def test_clients_may_not_produce_to_internal_topics() -> None:
    broker = new_broker(topic_info("__consumer_offsets"), topic_info("t"))
    result = produce(broker, wire(produce_request({"__consumer_offsets": {0: client_batch(1)}},
                                                  1), 9), 9, T0)
    answer = answers(result.response)[("__consumer_offsets", 0)]
    assert answer.error_code == Err.INVALID_TOPIC_EXCEPTION
    assert broker.partition("__consumer_offsets", 0).log_end_offset == 0


def test_acks_all_needs_min_insync_replicas() -> None:
    broker = new_broker(topic_info("t", configs={"min.insync.replicas": "2"}))
    refused = produce(broker, wire(produce_request({"t": {0: client_batch(1)}}, -1), 9), 9, T0)
    answer = answers(refused.response)[("t", 0)]
    assert answer.error_code == Err.NOT_ENOUGH_REPLICAS
    assert "min.isr" in (answer.error_message or "")
    assert refused.flush == [] and broker.partition("t", 0).log_end_offset == 0
    taken = produce(broker, wire(produce_request({"t": {0: client_batch(1)}}, 1), 9), 9, T0)
    assert answers(taken.response)[("t", 0)].error_code == 0


def test_produce_error_details() -> None:
    broker = new_broker(topic_info("c", configs={"cleanup.policy": "compact"}),
                        topic_info("lat", configs={"message.timestamp.type": "LogAppendTime"}))
    keyless = client_batch(3, keys=False)
    result = produce(broker, wire(produce_request({"c": {0: keyless}, "lat": {0: keyless}}, 1),
                                  9), 9, T0 + 7)
    got = answers(result.response)
    compacted = got[("c", 0)]
    assert compacted.error_code == Err.INVALID_RECORD
    assert [(e.batch_index, "Compacted" in (e.batch_index_error_message or ""))
            for e in compacted.record_errors] == [(0, True)]
    assert got[("lat", 0)].error_code == 0 and got[("lat", 0)].log_append_time_ms == T0 + 7
    back = encodes(result.response, 9)
    assert answers(back)[("c", 0)].record_errors[0].batch_index == 0
    # a transactional batch with no coordinator to verify it, and null records
    raw = client_batch(1, producer_id=5, transactional=True)
    txn = produce(broker, wire(produce_request({"lat": {0: raw}}, 1, "tx"), 9), 9, T0)
    assert answers(txn.response)[("lat", 0)].error_code == Err.COORDINATOR_NOT_AVAILABLE
    null = produce(broker, wire(produce_request({"lat": {0: None}}, 1), 9), 9, T0)
    assert answers(null.response)[("lat", 0)].error_code == Err.INVALID_RECORD


# ============================================================================ Fetch


def fetch(broker: Broker, partitions: list[tuple[str, int, int]], version: int = 12, *,
          max_bytes: int = 1 << 20, partition_max_bytes: int = 1 << 20,
          isolation_level: int = 0, leader_epoch: int = -1,
          topic_ids: dict[str, bytes] | None = None) -> FetchResponse:
    by_topic: dict[str, list[FetchRequest.FetchPartition]] = {}
    for topic, index, offset in partitions:
        by_topic.setdefault(topic, []).append(FetchRequest.FetchPartition(
            partition=index, fetch_offset=offset, partition_max_bytes=partition_max_bytes,
            current_leader_epoch=leader_epoch))
    ids = topic_ids or {}
    request = FetchRequest(max_wait_ms=0, min_bytes=1, max_bytes=max_bytes,
                           isolation_level=isolation_level, topics=[
                               FetchRequest.FetchTopic(topic=name if version < 13 else "",
                                                       topic_id=ids.get(name, bytes(16)),
                                                       partitions=parts)
                               for name, parts in by_topic.items()])
    response = FetchOperation(broker, wire(request, version), version, T0).evaluate(T0)
    assert response is not None
    return response


def parts(response: FetchResponse) -> list[FetchResponse.PartitionData]:
    return [p for t in response.responses for p in t.partitions]


def batch_offsets(broker: Broker, piece: Any) -> list[int]:
    return [h.base_offset for _, h in iter_batches(slice_bytes(broker, piece))]


def test_fetch_reads_whole_batches_up_to_the_high_watermark() -> None:
    broker = new_broker(topic_info("t"))
    raws = [client_batch(2), client_batch(3)]
    for raw in raws:
        append(broker, "t", raw)
    [p] = parts(fetch(broker, [("t", 0, 0)]))
    assert (p.error_code, p.high_watermark, p.last_stable_offset, p.log_start_offset) == \
        (0, 5, 5, 0)
    assert batch_offsets(broker, p.records) == [0, 2]
    data = slice_bytes(broker, p.records)
    assert data[len(raws[0]) + 16:] == raws[1][16:]
    # an offset inside a batch starts at that batch; the log end reads nothing
    assert batch_offsets(broker, parts(fetch(broker, [("t", 0, 3)]))[0].records) == [2]
    at_end = parts(fetch(broker, [("t", 0, 5)]))[0]
    assert at_end.error_code == 0 and len(at_end.records) == 0


def test_fetch_outside_the_log_is_offset_out_of_range() -> None:
    broker = new_broker(topic_info("t"))
    append(broker, "t", client_batch(4))
    append(broker, "t", client_batch(4))
    broker.partition("t", 0).log.delete_records_before(4)
    for offset in (3, 9, 1 << 40):  # below the log start (4), past the end (8)
        [p] = parts(fetch(broker, [("t", 0, offset)]))
        assert p.error_code == Err.OFFSET_OUT_OF_RANGE, offset
        assert p.high_watermark == -1
    assert parts(fetch(broker, [("t", 0, 4)]))[0].error_code == 0


@pytest.mark.parametrize(("epoch", "code"), [(-1, 0), (5, 0), (4, Err.FENCED_LEADER_EPOCH),
                                             (0, Err.FENCED_LEADER_EPOCH),
                                             (6, Err.UNKNOWN_LEADER_EPOCH)])
def test_fetch_checks_the_current_leader_epoch(epoch: int, code: int) -> None:
    broker = new_broker(topic_info("t", leader_epoch=5))
    append(broker, "t", client_batch(1))
    [p] = parts(fetch(broker, [("t", 0, 0)], leader_epoch=epoch))
    assert p.error_code == code


def test_max_bytes_always_returns_the_first_batch_whole() -> None:
    broker = new_broker(topic_info("t", partitions=2))
    for index in (0, 1):
        for _ in range(2):
            append(broker, "t", client_batch(5, value_bytes=200), partition=index)
    size = len(client_batch(5, value_bytes=200))
    for max_bytes in (1, size + 10):
        p0, p1 = parts(fetch(broker, [("t", 0, 0), ("t", 1, 0)], max_bytes=max_bytes))
        assert batch_offsets(broker, p0.records) == [0], max_bytes  # whole, though too big
        assert len(p0.records) == size
        assert len(p1.records) == 0 and p1.error_code == 0 and p1.high_watermark == 10
    p0, p1 = parts(fetch(broker, [("t", 0, 0), ("t", 1, 0)], max_bytes=3 * size))
    assert batch_offsets(broker, p0.records) == [0, 5]
    assert batch_offsets(broker, p1.records) == [0]
    # partition_max_bytes below one batch: the first partition still gets a whole batch
    p0, p1 = parts(fetch(broker, [("t", 0, 0), ("t", 1, 0)], partition_max_bytes=10))
    assert batch_offsets(broker, p0.records) == [0] and len(p1.records) == 0
    # a partition without data does not use up "the first batch"
    empty, full = parts(fetch(broker, [("t", 0, 10), ("t", 1, 0)], max_bytes=1))
    assert len(empty.records) == 0 and batch_offsets(broker, full.records) == [0]


def test_read_committed_stops_at_the_last_stable_offset() -> None:
    broker = new_broker(topic_info("t"))
    append(broker, "t", client_batch(2))  # 0-1
    append(broker, "t", client_batch(2, producer_id=77, transactional=True))  # 2-3, open txn
    append(broker, "t", client_batch(2))  # 4-5
    partition = broker.partition("t", 0)
    assert (partition.last_stable_offset, partition.high_watermark) == (2, 6)
    [p] = parts(fetch(broker, [("t", 0, 0)], isolation_level=1))
    assert batch_offsets(broker, p.records) == [0]
    assert (p.high_watermark, p.last_stable_offset) == (6, 2)
    assert p.aborted_transactions == []
    [p] = parts(fetch(broker, [("t", 0, 2)], isolation_level=1))
    assert len(p.records) == 0 and p.error_code == 0
    [p] = parts(fetch(broker, [("t", 0, 0)], isolation_level=0))
    assert batch_offsets(broker, p.records) == [0, 2, 4]


@pytest.mark.parametrize("version", [4, 12])
def test_aborted_transactions_are_empty_for_read_committed_and_null_otherwise(
        version: int) -> None:
    """FetchResponse.aborted_transactions is nullable (v4+): Kafka sends null for
    read_uncommitted and a list for read_committed, as fetch.py's docstring says."""
    broker = new_broker(topic_info("t"))
    committed = encodes(fetch(broker, [("t", 0, 0)], version, isolation_level=1), version)
    assert parts(committed)[0].aborted_transactions == []
    uncommitted = encodes(fetch(broker, [("t", 0, 0)], version, isolation_level=0), version)
    assert parts(uncommitted)[0].aborted_transactions is None


def test_fetch_v13_names_topics_by_id() -> None:
    broker = new_broker(topic_info("t"))
    append(broker, "t", client_batch(2))
    topic_id = broker.metadata.topics["t"].topic_id
    response = fetch(broker, [("t", 0, 0)], 13, topic_ids={"t": topic_id})
    assert [t.topic_id for t in response.responses] == [topic_id]
    assert batch_offsets(broker, parts(response)[0].records) == [0]
    unknown = fetch(broker, [("t", 0, 0)], 13, topic_ids={"t": b"\x07" * 16})
    assert [(t.topic_id, [p.error_code for p in t.partitions]) for t in unknown.responses] == \
        [(b"\x07" * 16, [Err.UNKNOWN_TOPIC_ID])]
    encodes(unknown, 13)
    by_name = fetch(broker, [("nope", 0, 0)], 12)
    assert [p.error_code for p in parts(by_name)] == [Err.UNKNOWN_TOPIC_OR_PARTITION]


# ============================================================================ ListOffsets


def timestamped(broker: Broker) -> None:
    """Offsets 0-2 at T0+0/10/20, 3-4 at T0+5/105, 5 at T0+50."""
    for base, deltas in ((T0, [0, 10, 20]), (T0 + 5, [0, 100]), (T0 + 50, [0])):
        append(broker, "t", client_batch(len(deltas), base_timestamp=base,
                                         timestamp_deltas=deltas))


def offsets_for(broker: Broker, queries: list[tuple[int, int]], version: int = 7, *,
                isolation_level: int = 0, leader_epoch: int = -1,
                topic: str = "t") -> list[tuple[int, int, int, int]]:
    """(error, offset, timestamp, leader epoch) per (partition, timestamp) query."""
    request = ListOffsetsRequest(replica_id=-1, isolation_level=isolation_level, topics=[
        ListOffsetsRequest.ListOffsetsTopic(name=topic, partitions=[
            ListOffsetsRequest.ListOffsetsPartition(partition_index=index, timestamp=ts,
                                                    current_leader_epoch=leader_epoch)
            for index, ts in queries])])
    response = encodes(list_offsets(broker, wire(request, version), version, T0), version)
    return [(p.error_code, p.offset, p.timestamp, p.leader_epoch)
            for t in response.topics for p in t.partitions]


def test_list_offsets_earliest_latest_and_max_timestamp() -> None:
    broker = new_broker(topic_info("t", leader_epoch=3))
    timestamped(broker)
    assert offsets_for(broker, [(0, -2), (0, -1), (0, -3)]) == [
        (0, 0, -1, 3), (0, 6, -1, 3), (0, 4, T0 + 105, 3)]


@pytest.mark.parametrize(("target", "offset", "timestamp"), [
    (T0 - 1000, 0, T0), (T0, 0, T0), (T0 + 1, 1, T0 + 10), (T0 + 15, 2, T0 + 20),
    (T0 + 21, 4, T0 + 105), (T0 + 105, 4, T0 + 105), (T0 + 106, -1, -1)])
def test_list_offsets_by_timestamp(target: int, offset: int, timestamp: int) -> None:
    broker = new_broker(topic_info("t"))
    timestamped(broker)
    [(error, got_offset, got_timestamp, epoch)] = offsets_for(broker, [(0, target)])
    assert (error, got_offset, got_timestamp) == (0, offset, timestamp)
    assert epoch == (0 if offset >= 0 else -1)


def test_list_offsets_empty_log_and_errors() -> None:
    broker = new_broker(topic_info("t", leader_epoch=2))
    assert offsets_for(broker, [(0, -2), (0, -1), (0, -3), (0, T0)]) == [
        (0, 0, -1, 2), (0, 0, -1, 2), (0, -1, -1, -1), (0, -1, -1, -1)]
    assert offsets_for(broker, [(0, -3)], 1)[0][0] == Err.UNSUPPORTED_VERSION
    assert offsets_for(broker, [(1, -1)])[0][0] == Err.UNKNOWN_TOPIC_OR_PARTITION
    assert offsets_for(broker, [(0, -1)], topic="nope")[0][0] == Err.UNKNOWN_TOPIC_OR_PARTITION
    assert offsets_for(broker, [(0, -1)], leader_epoch=1)[0][0] == Err.FENCED_LEADER_EPOCH
    assert offsets_for(broker, [(0, -1)], leader_epoch=3)[0][0] == Err.UNKNOWN_LEADER_EPOCH


def test_list_offsets_after_delete_records_and_for_read_committed() -> None:
    broker = new_broker(topic_info("t"))
    timestamped(broker)
    broker.partition("t", 0).log.delete_records_before(3)
    assert offsets_for(broker, [(0, -2), (0, T0)]) == [(0, 3, -1, 0), (0, 3, T0 + 5, 0)]
    append(broker, "t", client_batch(2, producer_id=9, transactional=True))  # 6-7 open
    assert offsets_for(broker, [(0, -1)], isolation_level=1)[0][1] == 6
    assert offsets_for(broker, [(0, -1)], isolation_level=0)[0][1] == 8
    assert offsets_for(broker, [(0, -1)], 1)[0][:2] == (0, 8)


# ============================================================================ OffsetForLeaderEpoch


def epoch_ends(broker: Broker, queries: list[tuple[int, int, int]],
               version: int = 4) -> list[tuple[int, int, int]]:
    """(error, leader epoch, end offset) per (partition, leader epoch, current epoch)."""
    request = OffsetForLeaderEpochRequest(replica_id=-1, topics=[
        OffsetForLeaderEpochRequest.OffsetForLeaderTopic(topic="t", partitions=[
            OffsetForLeaderEpochRequest.OffsetForLeaderPartition(
                partition=index, leader_epoch=epoch, current_leader_epoch=current)
            for index, epoch, current in queries])])
    response = encodes(offset_for_leader_epoch(broker, wire(request, version), version),
                       version)
    return [(p.error_code, p.leader_epoch, p.end_offset)
            for t in response.topics for p in t.partitions]


def test_offset_for_leader_epoch_across_a_restart() -> None:
    broker = new_broker(topic_info("t", leader_epoch=0))
    append(broker, "t", client_batch(3))
    broker.close()
    fs = broker.fs
    assert isinstance(fs, MemoryLogFileSystem)
    broker = new_broker(topic_info("t", leader_epoch=2), fs=fs)  # a new leader epoch
    append(broker, "t", client_batch(2))
    assert broker.partition("t", 0).log.epochs.entries() == [(0, 0), (2, 3)]
    for version in (2, 4):
        assert epoch_ends(broker, [(0, 0, -1), (0, 1, -1), (0, 2, 2), (0, 3, -1),
                                   (0, -1, -1)], version) == [
            (0, 0, 3), (0, 0, 3), (0, 2, 5), (0, -1, -1), (0, -1, -1)]
    assert epoch_ends(broker, [(0, 0, 1), (0, 0, 3), (9, 0, -1)]) == [
        (Err.FENCED_LEADER_EPOCH, -1, -1), (Err.UNKNOWN_LEADER_EPOCH, -1, -1),
        (Err.UNKNOWN_TOPIC_OR_PARTITION, -1, -1)]


# ============================================================================ DeleteRecords


def delete(broker: Broker, targets: dict[str, list[tuple[int, int]]],
           version: int = 2) -> tuple[dict[tuple[str, int], tuple[int, int]], list[Any]]:
    request = DeleteRecordsRequest(timeout_ms=1000, topics=[
        DeleteRecordsRequest.DeleteRecordsTopic(name=name, partitions=[
            DeleteRecordsRequest.DeleteRecordsPartition(partition_index=i, offset=o)
            for i, o in offsets]) for name, offsets in targets.items()])
    response, changed = delete_records(broker, wire(request, version), T0)
    response = encodes(response, version)
    return ({(t.name, p.partition_index): (p.error_code, p.low_watermark)
             for t in response.topics for p in t.partitions}, changed)


def test_delete_records() -> None:
    broker = new_broker(topic_info("t"), topic_info("__consumer_offsets"))
    for _ in range(3):
        append(broker, "t", client_batch(2))  # offsets 0..5
    partition = broker.partition("t", 0)
    result, changed = delete(broker, {"t": [(0, 3)]}, 0)
    assert result == {("t", 0): (0, 3)} and changed == [partition]
    assert partition.log_start_offset == 3
    result, changed = delete(broker, {"t": [(0, 2)]})  # below the log start: nothing moves
    assert result == {("t", 0): (0, 3)} and changed == []
    result, changed = delete(broker, {"t": [(0, 7)]})
    assert result == {("t", 0): (Err.OFFSET_OUT_OF_RANGE, -1)} and changed == []
    result, _ = delete(broker, {"t": [(0, -1), (4, 0)], "nope": [(0, 0)],
                                "__consumer_offsets": [(0, 0)]})
    assert result == {("t", 0): (0, 6), ("t", 4): (Err.UNKNOWN_TOPIC_OR_PARTITION, -1),
                      ("nope", 0): (Err.UNKNOWN_TOPIC_OR_PARTITION, -1),
                      ("__consumer_offsets", 0): (Err.INVALID_TOPIC_EXCEPTION, -1)}
    assert partition.log_start_offset == 6 == partition.high_watermark
    assert parts(fetch(broker, [("t", 0, 5)]))[0].error_code == Err.OFFSET_OUT_OF_RANGE


# ============================================================================ Metadata

# Kafka's AclOperation codes and the operations each resource type supports
# (`org.apache.kafka.common.acl.AclOperation`, `Topic`/`Cluster` resource types)
ACL = {"READ": 3, "WRITE": 4, "CREATE": 5, "DELETE": 6, "ALTER": 7, "DESCRIBE": 8,
       "CLUSTER_ACTION": 9, "DESCRIBE_CONFIGS": 10, "ALTER_CONFIGS": 11,
       "IDEMPOTENT_WRITE": 12}
TOPIC_OPS = ["READ", "WRITE", "CREATE", "DESCRIBE", "DELETE", "ALTER", "DESCRIBE_CONFIGS",
             "ALTER_CONFIGS"]
CLUSTER_OPS = ["CREATE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS",
               "IDEMPOTENT_WRITE", "ALTER", "DESCRIBE"]


def bits(names: list[str]) -> int:
    return sum(1 << ACL[name] for name in names)


def meta(broker: Broker, version: int, topics: list[str | bytes] | None, **flags: bool
         ) -> MetadataResponse:
    request = MetadataRequest(
        topics=[MetadataRequest.MetadataRequestTopic(name=t, topic_id=bytes(16))
                if isinstance(t, str) else MetadataRequest.MetadataRequestTopic(name=None,
                                                                                 topic_id=t)
                for t in topics or []], **flags)
    if topics is None:
        request.topics = None  # (the constructor makes None an empty list)
    response: MetadataResponse = encodes(metadata(broker, wire(request, version), version),
                                         version)
    return response


def metadata_broker() -> Broker:
    return new_broker(topic_info("a", partitions=2, leader_epoch=4), topic_info("b"),
                      topic_info("__consumer_offsets"))


@pytest.mark.parametrize("version", [1, 4, 9, 12])
def test_metadata_for_all_topics(version: int) -> None:
    response = meta(metadata_broker(), version, None)
    assert [(b.node_id, b.host, b.port) for b in response.brokers] == [(0, "127.0.0.1", 9092)]
    assert response.controller_id == 0
    topics = {t.name: t for t in response.topics}
    assert set(topics) == {"a", "b", "__consumer_offsets"}
    assert [(p.partition_index, p.leader_id, p.replica_nodes, p.isr_nodes)
            for p in topics["a"].partitions] == [(0, 0, [0], [0]), (1, 0, [0], [0])]
    assert topics["__consumer_offsets"].is_internal and not topics["a"].is_internal
    if version >= 7:
        assert topics["a"].partitions[0].leader_epoch == 4
    if version >= 2:
        assert response.cluster_id == "zoologTestClusterId00A"
    if version >= 10:
        assert topics["b"].topic_id == topic_info("b").topic_id


def test_metadata_v0_empty_list_means_all_topics_and_v1_empty_means_none() -> None:
    broker = metadata_broker()
    assert len(meta(broker, 0, []).topics) == 3
    assert meta(broker, 1, []).topics == []


@pytest.mark.parametrize("version", [0, 5, 12])
def test_metadata_for_named_topics(version: int) -> None:
    response = meta(metadata_broker(), version, ["b", "missing", "bad name!", ""])
    got = [(t.name, t.error_code, len(t.partitions)) for t in response.topics]
    assert got == [("b", 0, 1), ("missing", Err.UNKNOWN_TOPIC_OR_PARTITION, 0),
                   ("bad name!", Err.INVALID_TOPIC_EXCEPTION, 0),
                   ("", Err.INVALID_TOPIC_EXCEPTION, 0)]


def test_metadata_by_topic_id() -> None:
    broker = metadata_broker()
    response = meta(broker, 12, [topic_info("a").topic_id, b"\x09" * 16])
    assert [(t.name, t.error_code) for t in response.topics] == [
        ("a", 0), (None, Err.UNKNOWN_TOPIC_ID)]


def test_metadata_authorized_operations() -> None:
    broker = metadata_broker()
    asked = meta(broker, 8, ["a"], include_cluster_authorized_operations=True,
                 include_topic_authorized_operations=True)
    assert asked.cluster_authorized_operations == bits(CLUSTER_OPS)
    assert asked.topics[0].topic_authorized_operations == bits(TOPIC_OPS)
    not_asked = meta(broker, 8, ["a"])
    assert not_asked.cluster_authorized_operations == -2**31
    assert not_asked.topics[0].topic_authorized_operations == -2**31
    v12 = meta(broker, 12, ["a"], include_topic_authorized_operations=True)
    assert v12.topics[0].topic_authorized_operations == bits(TOPIC_OPS)


def test_metadata_auto_creation_candidates() -> None:
    broker = metadata_broker()
    names = [MetadataRequest.MetadataRequestTopic(name=n) for n in ("a", "new", "bad name",
                                                                    "new", "a.b")]
    assert topics_to_create(broker, MetadataRequest(topics=names), 12) == ["new", "a.b"]
    assert topics_to_create(broker, MetadataRequest(topics=names,
                                                    allow_auto_topic_creation=False), 12) == []
    broker.settings.auto_create_topics_enable = False
    assert topics_to_create(broker, MetadataRequest(topics=names), 12) == []


# ============================================================================ topics_api


def creatable(name: str, partitions: int = 1, replication_factor: int = 1, *,
              configs: dict[str, str | None] | None = None,
              assignments: dict[int, list[int]] | None = None
              ) -> CreateTopicsRequest.CreatableTopic:
    return CreateTopicsRequest.CreatableTopic(
        name=name, num_partitions=partitions, replication_factor=replication_factor,
        assignments=[CreateTopicsRequest.CreatableReplicaAssignment(partition_index=p,
                                                                    broker_ids=b)
                     for p, b in (assignments or {}).items()],
        configs=[CreateTopicsRequest.CreatableTopicConfig(name=k, value=v)
                 for k, v in (configs or {}).items()])


def create_errors(broker: Broker, topics: list[CreateTopicsRequest.CreatableTopic],
                  version: int = 7) -> dict[str, int]:
    request = wire(CreateTopicsRequest(topics=topics, timeout_ms=1000), version)
    plan = topics_api.plan_create_topics(broker, request)
    response = encodes(topics_api.create_topics_response(broker, request, plan, {}), version)
    return {t.name: t.error_code for t in response.topics}


def test_create_topics_plans_and_answers() -> None:
    broker = new_broker(topic_info("exists"))
    request = wire(CreateTopicsRequest(topics=[
        creatable("new", 3, configs={"retention.ms": "1000"}),
        creatable("defaults", -1, -1),
        creatable("assigned", -1, -1, assignments={0: [0], 1: [0]})],
        validate_only=True), 7)
    plan = topics_api.plan_create_topics(broker, request)
    assert plan.errors == {} and plan.validate_only
    assert [(t.name, t.partitions, t.replication_factor, t.replicas) for t in plan.create] == [
        ("new", 3, 1, {0: [0], 1: [0], 2: [0]}), ("defaults", 1, 1, {0: [0]}),
        ("assigned", 2, 1, {0: [0], 1: [0]})]
    assert plan.create[0].configs == {"retention.ms": "1000"}
    outcomes: dict[str, KafkaError | None] = {
        "defaults": KafkaError(Err.REQUEST_TIMED_OUT, "slow")}
    response = encodes(topics_api.create_topics_response(broker, request, plan, outcomes), 7)
    results = {t.name: t for t in response.topics}
    assert results["new"].error_code == 0 and results["new"].num_partitions == 3
    configs = {c.name: (c.value, c.config_source) for c in results["new"].configs}
    assert configs["retention.ms"] == ("1000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert configs["segment.bytes"] == ("1073741824", ConfigSource.DEFAULT_CONFIG)
    assert (results["defaults"].error_code, results["defaults"].num_partitions,
            results["defaults"].error_message) == (Err.REQUEST_TIMED_OUT, -1, "slow")


def test_create_topics_errors() -> None:
    settings = BrokerSettings(partitions_per_topic_max=10)
    broker = new_broker(topic_info("exists"), topic_info("a_b"), settings=settings)
    errors = create_errors(broker, [
        creatable("bad/name"), creatable(".."), creatable("x" * 250), creatable("a.b"),
        creatable("exists"),
        creatable("zero", 0), creatable("too-many", 11),
        creatable("rf2", 1, 2), creatable("rf0", 1, 0),
        creatable("unknown-broker", -1, -1, assignments={0: [5]}),
        creatable("gap", -1, -1, assignments={1: [0]}),
        creatable("dup-replica", -1, -1, assignments={0: [0, 0]}),
        creatable("empty-replicas", -1, -1, assignments={0: []}),
        creatable("bad-config", configs={"retention.ms": "soon"}),
        creatable("unknown-config", configs={"no.such.key": "1"}),
        creatable("null-config", configs={"retention.ms": None}),
        creatable("both", 2, -1, assignments={0: [0]}),
        creatable("twice"), creatable("twice")])
    assert errors == {
        "bad/name": Err.INVALID_TOPIC_EXCEPTION, "..": Err.INVALID_TOPIC_EXCEPTION,
        "x" * 250: Err.INVALID_TOPIC_EXCEPTION, "a.b": Err.INVALID_TOPIC_EXCEPTION,
        "exists": Err.TOPIC_ALREADY_EXISTS,
        "zero": Err.INVALID_PARTITIONS, "too-many": Err.INVALID_PARTITIONS,
        "rf2": Err.INVALID_REPLICATION_FACTOR, "rf0": Err.INVALID_REPLICATION_FACTOR,
        "unknown-broker": Err.INVALID_REPLICA_ASSIGNMENT,
        "gap": Err.INVALID_REPLICA_ASSIGNMENT, "dup-replica": Err.INVALID_REPLICA_ASSIGNMENT,
        "empty-replicas": Err.INVALID_REPLICA_ASSIGNMENT,
        "bad-config": Err.INVALID_CONFIG, "unknown-config": Err.INVALID_CONFIG,
        "null-config": Err.INVALID_CONFIG,
        "both": Err.INVALID_REQUEST, "twice": Err.INVALID_REQUEST}
    assert create_errors(broker, [creatable("v2", 1, 2)], 2) == {
        "v2": Err.INVALID_REPLICATION_FACTOR}


def test_create_topics_uneven_assignments_need_two_brokers() -> None:
    broker = new_broker()
    broker.metadata.brokers[1] = BrokerRegistration(1, "127.0.0.1", 9093)
    assert create_errors(broker, [creatable("uneven", -1, -1,
                                            assignments={0: [0], 1: [0, 1]})]) == {
        "uneven": Err.INVALID_REPLICA_ASSIGNMENT}
    assert create_errors(broker, [creatable("even", -1, -1, assignments={0: [1, 0]})]) == {
        "even": 0}


def test_create_topics_respects_the_broker_partition_limit() -> None:
    broker = new_broker(topic_info("t", partitions=3), settings=BrokerSettings(partitions_max=4))
    assert create_errors(broker, [creatable("two", 2)]) == {"two": Err.INVALID_PARTITIONS}
    assert create_errors(broker, [creatable("one", 1)]) == {"one": 0}


def delete_plan(broker: Broker, version: int, names: list[str | None],
                ids: list[bytes] | None = None) -> dict[object, int]:
    if version >= 6:
        request = DeleteTopicsRequest(topics=[
            DeleteTopicsRequest.DeleteTopicState(name=n, topic_id=i)
            for n, i in zip(names, ids or [bytes(16)] * len(names), strict=True)])
    else:
        request = DeleteTopicsRequest(topic_names=[n for n in names if n is not None])
    plan = topics_api.plan_delete_topics(broker, wire(request, version), version)
    response = encodes(topics_api.delete_topics_response(plan, {}), version)
    return {(r.name if r.name is not None else r.topic_id): r.error_code
            for r in response.responses}


def test_delete_topics_plans_and_errors() -> None:
    broker = new_broker(topic_info("a"), topic_info("b"), topic_info("__consumer_offsets"))
    request = wire(DeleteTopicsRequest(topic_names=["a", "b", "a"]), 5)
    plan = topics_api.plan_delete_topics(broker, request, 5)
    assert [t.name for t in plan.delete] == ["a", "b"]
    assert [e[2].code if e[2] else 0 for e in plan.entries] == [0, 0, Err.INVALID_REQUEST]
    response = encodes(topics_api.delete_topics_response(
        plan, {"b": KafkaError(Err.REQUEST_TIMED_OUT, "zk")}), 5)
    assert [(r.name, r.error_code) for r in response.responses] == [
        ("a", 0), ("b", Err.REQUEST_TIMED_OUT), ("a", Err.INVALID_REQUEST)]
    assert delete_plan(broker, 1, ["nope", "__consumer_offsets"]) == {
        "nope": Err.UNKNOWN_TOPIC_OR_PARTITION, "__consumer_offsets": Err.INVALID_REQUEST}
    a_id = broker.metadata.topics["a"].topic_id
    assert delete_plan(broker, 6, [None, None, "b"], [a_id, b"\x05" * 16, bytes(16)]) == {
        "a": 0, b"\x05" * 16: Err.UNKNOWN_TOPIC_ID, "b": 0}
    broker.settings.delete_topic_enable = False
    assert delete_plan(broker, 4, ["a"]) == {"a": Err.TOPIC_DELETION_DISABLED}


def partitions_plan(broker: Broker, topics: list[tuple[str, int, list[list[int]] | None]],
                    version: int = 3) -> tuple[topics_api.PartitionsPlan, dict[str, int]]:
    entries = []
    for name, count, assignments in topics:
        entry = CreatePartitionsRequest.CreatePartitionsTopic(name=name, count=count)
        entry.assignments = None if assignments is None else [  # (null: not given)
            CreatePartitionsRequest.CreatePartitionsAssignment(broker_ids=b)
            for b in assignments]
        entries.append(entry)
    request = wire(CreatePartitionsRequest(topics=entries, timeout_ms=1000), version)
    plan = topics_api.plan_create_partitions(broker, request)
    response = encodes(topics_api.create_partitions_response(request, plan, {}), version)
    return plan, {r.name: r.error_code for r in response.results}


def test_create_partitions_plans_and_errors() -> None:
    settings = BrokerSettings(partitions_per_topic_max=8)
    broker = new_broker(topic_info("a"), topic_info("b", partitions=2), topic_info("c"),
                        topic_info("d"), topic_info("__consumer_offsets"), settings=settings)
    plan, errors = partitions_plan(broker, [
        ("a", 3, None), ("b", 4, [[0], [0]]), ("c", 1, None), ("d", 9, None),
        ("nope", 2, None), ("__consumer_offsets", 5, None), ("x", 2, None), ("x", 3, None)])
    assert [(info.name, added) for info, added in plan.grow] == [
        ("a", {1: [0], 2: [0]}), ("b", {2: [0], 3: [0]})]
    assert errors == {"a": 0, "b": 0, "c": Err.INVALID_PARTITIONS,
                      "d": Err.INVALID_PARTITIONS, "nope": Err.UNKNOWN_TOPIC_OR_PARTITION,
                      "__consumer_offsets": Err.INVALID_REQUEST, "x": Err.INVALID_REQUEST}
    _, errors = partitions_plan(broker, [("a", 3, [[0]]), ("b", 3, [[7]]), ("c", 2, [[0, 0]])],
                                0)
    assert errors == {"a": Err.INVALID_REPLICA_ASSIGNMENT, "b": Err.INVALID_REPLICA_ASSIGNMENT,
                      "c": Err.INVALID_REPLICA_ASSIGNMENT}


# ============================================================================ configs_api


def describe(broker: Broker, resources: list[tuple[int, str, list[str] | None]],
             version: int = 4, synonyms: bool = True, documentation: bool = False
             ) -> list[Any]:
    request = DescribeConfigsRequest(resources=[
        DescribeConfigsRequest.DescribeConfigsResource(resource_type=kind, resource_name=name,
                                                       configuration_keys=keys)
        for kind, name, keys in resources],
        include_synonyms=synonyms, include_documentation=documentation)
    response = encodes(configs_api.describe_configs(broker, wire(request, version), version),
                       version)
    return list(response.results)


def config_broker() -> Broker:
    settings = BrokerSettings(topic_defaults={"log.segment.bytes": "2000000"})
    return new_broker(topic_info("t", configs={"retention.ms": "1000",
                                               "cleanup.policy": "compact"}),
                      settings=settings)


def test_describe_topic_configs_sources_synonyms_and_types() -> None:
    [result] = describe(config_broker(), [(2, "t", None)], documentation=True)
    assert result.error_code == 0
    entries = {c.name: c for c in result.configs}
    assert set(entries) == set(TOPIC_CONFIGS)
    retention = entries["retention.ms"]
    assert (retention.value, retention.config_source, retention.read_only,
            retention.config_type) == (
        "1000", ConfigSource.DYNAMIC_TOPIC_CONFIG, False, ConfigType.LONG)
    assert [(s.name, s.value, s.source) for s in retention.synonyms] == [
        ("retention.ms", "1000", ConfigSource.DYNAMIC_TOPIC_CONFIG),
        ("log.retention.ms", "604800000", ConfigSource.DEFAULT_CONFIG)]
    segment = entries["segment.bytes"]
    assert (segment.value, segment.config_source, segment.config_type) == (
        "2000000", ConfigSource.STATIC_BROKER_CONFIG, ConfigType.INT)
    assert [(s.name, s.value, s.source) for s in segment.synonyms] == [
        ("log.segment.bytes", "2000000", ConfigSource.STATIC_BROKER_CONFIG),
        ("log.segment.bytes", "1073741824", ConfigSource.DEFAULT_CONFIG)]
    ratio = entries["min.cleanable.dirty.ratio"]
    assert (ratio.value, ratio.config_source, ratio.config_type) == (
        "0.5", ConfigSource.DEFAULT_CONFIG, ConfigType.DOUBLE)
    assert entries["cleanup.policy"].config_type == ConfigType.LIST
    assert entries["cleanup.policy"].value == "compact"
    assert entries["preallocate"].config_type == ConfigType.BOOLEAN
    assert entries["compression.type"].config_type == ConfigType.STRING
    assert all(c.documentation for c in result.configs)


def test_describe_configs_by_key_and_by_version() -> None:
    broker = config_broker()
    [result] = describe(broker, [(2, "t", ["retention.ms", "segment.ms"])], 1,
                        synonyms=False)
    assert [(c.name, c.value, c.synonyms) for c in result.configs] == [
        ("retention.ms", "1000", []), ("segment.ms", "604800000", [])]
    [v0] = describe(broker, [(2, "t", ["segment.bytes", "retention.ms", "segment.ms"])], 0)
    assert {c.name: (c.value, c.is_default) for c in v0.configs} == {  # is_default: v0 only
        "retention.ms": ("1000", False), "segment.bytes": ("2000000", False),
        "segment.ms": ("604800000", True)}
    [v3] = describe(broker, [(2, "t", ["segment.ms"])], 3, documentation=False)
    assert v3.configs[0].documentation is None


def test_describe_broker_configs_and_errors() -> None:
    broker = config_broker()
    by_id, by_empty, wrong, unknown, group = describe(
        broker, [(4, "0", None), (4, "", ["broker.id", "log.segment.bytes", "log.retention.ms"]),
                 (4, "7", None), (2, "nope", None), (3, "g", None)])
    values = {c.name: c for c in by_id.configs}
    assert values["broker.id"].value == "0"
    assert all(c.read_only for c in by_id.configs)
    assert {c.name: (c.value, c.config_source) for c in by_empty.configs} == {
        "broker.id": ("0", ConfigSource.STATIC_BROKER_CONFIG),
        "log.segment.bytes": ("2000000", ConfigSource.STATIC_BROKER_CONFIG),
        "log.retention.ms": ("604800000", ConfigSource.DEFAULT_CONFIG)}
    assert (wrong.error_code, wrong.configs) == (Err.INVALID_REQUEST, [])
    assert (unknown.error_code, unknown.configs) == (Err.UNKNOWN_TOPIC_OR_PARTITION, [])
    assert group.error_code == Err.INVALID_REQUEST


def incremental(broker: Broker, resources: list[tuple[int, str, list[tuple[str, int,
                                                                           str | None]]]],
                version: int = 1) -> tuple[configs_api.AlterPlan, dict[tuple[int, str], int]]:
    request = wire(IncrementalAlterConfigsRequest(resources=[
        IncrementalAlterConfigsRequest.AlterConfigsResource(
            resource_type=kind, resource_name=name, configs=[
                IncrementalAlterConfigsRequest.AlterableConfig(name=k, config_operation=op,
                                                               value=v)
                for k, op, v in changes]) for kind, name, changes in resources]), version)
    plan = configs_api.plan_incremental_alter_configs(broker, request)
    response = encodes(configs_api.alter_configs_response(request, plan, {}), version)
    return plan, {(r.resource_type, r.resource_name): r.error_code for r in response.responses}


SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def test_incremental_alter_configs_operations() -> None:
    broker = config_broker()
    plan, errors = incremental(broker, [(2, "t", [
        ("segment.ms", SET, "5000"), ("retention.ms", DELETE, None),
        ("cleanup.policy", APPEND, "delete"), ("max.message.bytes", DELETE, None)])])
    assert errors == {(2, "t"): 0}
    assert plan.changes == {"t": {"segment.ms": "5000", "cleanup.policy": "compact,delete"}}
    broker.metadata.topics["t"].configs = plan.changes["t"]
    broker.topic_configs_changed("t")
    plan, _ = incremental(broker, [(2, "t", [("cleanup.policy", SUBTRACT, "compact")])], 0)
    assert plan.changes["t"]["cleanup.policy"] == "delete"
    plan, _ = incremental(broker, [(2, "t", [("cleanup.policy", APPEND, "delete")])])
    assert plan.changes["t"]["cleanup.policy"] == "compact,delete"  # no duplicates


def test_incremental_append_to_a_key_without_override_starts_from_its_value() -> None:
    broker = new_broker(topic_info("t"))
    plan, errors = incremental(broker, [(2, "t", [("cleanup.policy", APPEND, "compact")])])
    assert errors == {(2, "t"): 0}
    assert plan.changes["t"]["cleanup.policy"] == "delete,compact"
    plan, errors = incremental(broker, [(2, "t", [
        ("leader.replication.throttled.replicas", APPEND, "0:0")])])
    assert errors == {(2, "t"): 0}
    assert plan.changes["t"]["leader.replication.throttled.replicas"] == "0:0"


def test_incremental_alter_configs_errors() -> None:
    broker = config_broker()
    _, errors = incremental(broker, [
        (4, "0", [("log.retention.ms", SET, "1")]),
        (4, "", [("log.retention.ms", SET, "1")]),
        (2, "nope", [("retention.ms", SET, "1")]),
        (2, "t", [("no.such.key", SET, "1")]),
        (3, "g", [("x", SET, "1")])])
    assert errors == {(4, "0"): Err.INVALID_REQUEST, (4, ""): Err.INVALID_REQUEST,
                      (2, "nope"): Err.UNKNOWN_TOPIC_OR_PARTITION,
                      (2, "t"): Err.INVALID_CONFIG, (3, "g"): Err.INVALID_REQUEST}
    cases: list[tuple[list[tuple[str, int, str | None]], int]] = [
        ([("retention.ms", SET, "soon")], Err.INVALID_CONFIG),
        ([("retention.ms", SET, None)], Err.INVALID_CONFIG),
        ([("retention.ms", APPEND, "1")], Err.INVALID_CONFIG),
        ([("retention.ms", SUBTRACT, "1")], Err.INVALID_CONFIG),
        ([("cleanup.policy", APPEND, "shred")], Err.INVALID_CONFIG),
        ([("retention.ms", 7, "1")], Err.INVALID_REQUEST),
        ([("retention.ms", SET, "1"), ("retention.ms", SET, "2")], Err.INVALID_REQUEST),
        ([("min.compaction.lag.ms", SET, "10"), ("max.compaction.lag.ms", SET, "5")],
         Err.INVALID_CONFIG)]
    for changes, code in cases:
        plan, errors = incremental(broker, [(2, "t", changes)])
        assert errors == {(2, "t"): code}, changes
        assert plan.changes == {}


def test_alter_configs_replaces_the_overrides() -> None:
    broker = config_broker()
    for version in (0, 2):
        request = wire(AlterConfigsRequest(resources=[
            AlterConfigsRequest.AlterConfigsResource(resource_type=2, resource_name="t",
                                                     configs=[AlterConfigsRequest.AlterableConfig(
                                                         name="segment.ms", value="9")]),
            AlterConfigsRequest.AlterConfigsResource(resource_type=2, resource_name="t2",
                                                     configs=[]),
            AlterConfigsRequest.AlterConfigsResource(resource_type=4, resource_name="0",
                                                     configs=[])]), version)
        plan = configs_api.plan_alter_configs(broker, request)
        assert plan.changes == {"t": {"segment.ms": "9"}}
        response = encodes(configs_api.alter_configs_response(request, plan, {}), version)
        assert [r.error_code for r in response.responses] == [
            0, Err.UNKNOWN_TOPIC_OR_PARTITION, Err.INVALID_REQUEST]


# ============================================================================ error_responses

_LIST = re.compile(r"list\[([\w.]+)\]")
_SCALARS: dict[str, object] = {"int": 0, "str": "x", "bytes": b"", "bool": False}


def _list_fields(obj: Any) -> list[tuple[str, Any]]:
    """(name, element type) of each list-valued field of a generated message class."""
    module = sys.modules[type(obj).__module__]
    out: list[tuple[str, Any]] = []
    for name, param in inspect.signature(type(obj).__init__).parameters.items():
        match = _LIST.search(param.annotation) if isinstance(param.annotation, str) else None
        if name == "self" or match is None:
            continue
        kind: Any = match.group(1)
        if kind not in _SCALARS:
            resolved: Any = module
            for part in kind.split("."):
                resolved = getattr(resolved, part)
            kind = resolved
        out.append((name, kind))
    return out


def filled_request(api_key: int, version: int) -> Any:
    """The API's request with one entry in every list the version carries (recursively),
    so that APIs answering per topic/partition/resource/group have something to answer."""
    request = REQUESTS[api_key]()

    def encodable() -> bool:
        try:
            request.to_bytes(version)
        except Exception:
            return False
        return True

    def visit(obj: Any, depth: int) -> None:
        for name, kind in _list_fields(obj):
            element = _SCALARS[kind] if isinstance(kind, str) else kind()
            old = getattr(obj, name)
            setattr(obj, name, [element])
            if not encodable():
                setattr(obj, name, old)
            elif not isinstance(kind, str) and depth < 3:
                visit(element, depth + 1)

    visit(request, 0)
    return wire(request, version)


def error_codes(obj: Any) -> list[int]:
    if isinstance(obj, list):
        return [code for item in obj for code in error_codes(item)]
    out: list[int] = []
    for name in getattr(obj, "__slots__", ()):
        value: Any = getattr(obj, name, None)
        if name == "error_code" or name == "partition_error_code":  # AddPartitionsToTxn v0-3
            out.append(value)
        elif isinstance(value, list) or hasattr(value, "__slots__"):
            out.extend(error_codes(value))
    return out


EVERY_ADVERTISED = sorted({(key, version) for key, (low, high) in ADVERTISED.items()
                           for version in (low, high)})


@pytest.mark.parametrize(("api_key", "version"), EVERY_ADVERTISED)
def test_error_response_for_every_advertised_api(api_key: int, version: int) -> None:
    request = filled_request(api_key, version)
    error = KafkaError(Err.UNSUPPORTED_VERSION, "not here")
    response = error_response(api_key, request, version, error)
    assert type(response) is RESPONSES[api_key]
    decoded = encodes(response, version)
    codes = error_codes(decoded)
    assert Err.UNSUPPORTED_VERSION in codes, (api_key, version, decoded)
    assert set(codes) <= {Err.NONE, Err.UNSUPPORTED_VERSION}


def test_error_responses_mirror_what_the_request_named() -> None:
    request = wire(produce_request({"a": {0: client_batch(1), 2: client_batch(1)},
                                    "b": {1: client_batch(1)}}), 9)
    response = error_response(0, request, 9, KafkaError(Err.UNKNOWN_SERVER_ERROR))
    assert {k: (p.error_code, p.base_offset) for k, p in answers(response).items()} == {
        ("a", 0): (-1, -1), ("a", 2): (-1, -1), ("b", 1): (-1, -1)}


# ============================================================================ topic_config


@pytest.mark.parametrize("name", sorted(TOPIC_CONFIGS))
def test_every_config_parses_its_own_default(name: str) -> None:
    definition = TOPIC_CONFIGS[name]
    assert definition.name == name
    definition.parse(definition.default)
    assert validate_topic_configs({name: definition.default}) == {name: definition.default}


def invalid_values(definition: ConfigDef) -> list[str]:
    values: list[str] = []
    if definition.type == ConfigType.BOOLEAN:
        values += ["maybe", "1", ""]
    elif definition.type in (ConfigType.INT, ConfigType.SHORT, ConfigType.LONG):
        values += ["ten", "1.5", ""]
        values.append(str(2**31) if definition.type == ConfigType.INT else str(2**63))
    elif definition.type == ConfigType.DOUBLE:
        values += ["half", ""]
    elif definition.type == ConfigType.LIST:
        # Kafka's validators: cleanup.policy is ValidList.in(compact, delete); the throttled
        # replica lists are ThrottledReplicaListValidator ("*" or partition:broker pairs)
        values.append("bogus")
    elif definition.choices is not None:
        values += ["bogus", ""]
    if definition.minimum is not None and definition.type != ConfigType.DOUBLE:
        values.append(str(int(definition.minimum) - 1))
    if definition.maximum is not None and definition.type != ConfigType.DOUBLE:
        values.append(str(int(definition.maximum) + 1))
    if definition.type == ConfigType.DOUBLE:
        if definition.minimum is not None:
            values.append(str(definition.minimum - 0.1))
        if definition.maximum is not None:
            values.append(str(definition.maximum + 0.1))
    return values


@pytest.mark.parametrize("name", sorted(TOPIC_CONFIGS))
def test_invalid_values_are_invalid_config_naming_the_key(name: str) -> None:
    definition = TOPIC_CONFIGS[name]
    values = invalid_values(definition)
    assert values, f"no invalid value known for {name}"
    for raw in values:
        with pytest.raises(KafkaError) as caught:
            validate_topic_configs({name: raw})
        assert caught.value.code == Err.INVALID_CONFIG, raw
        assert name in caught.value.message, caught.value.message


def test_throttled_replica_lists_take_kafkas_format() -> None:
    for good in ("", "*", "0:1", "0:1, 1:0"):
        validate_topic_configs({"leader.replication.throttled.replicas": good})


def test_validate_topic_configs_rejects_unknown_keys_nulls_and_crossed_lags() -> None:
    with pytest.raises(KafkaError) as caught:
        validate_topic_configs({"retention.ms": "1", "retention.hours": "1"})
    assert caught.value.code == Err.INVALID_CONFIG and "retention.hours" in caught.value.message
    with pytest.raises(KafkaError) as caught:
        validate_topic_configs({"retention.ms": None})
    assert caught.value.code == Err.INVALID_CONFIG
    with pytest.raises(KafkaError) as caught:
        validate_topic_configs({"min.compaction.lag.ms": "100", "max.compaction.lag.ms": "99"})
    assert caught.value.code == Err.INVALID_CONFIG
    assert "min.compaction.lag.ms" in caught.value.message
    assert validate_topic_configs({"min.compaction.lag.ms": "99",
                                   "max.compaction.lag.ms": " 99 "}) == {
        "min.compaction.lag.ms": "99", "max.compaction.lag.ms": "99"}


def test_effective_configs_resolve_override_then_broker_then_kafka_default() -> None:
    values = effective({"retention.ms": "5"}, {"log.retention.ms": "6", "log.roll.ms": "7",
                                               "log.cleanup.policy": "compact,delete"})
    assert values["retention.ms"] == 5 and values["segment.ms"] == 7
    assert values["cleanup.policy"] == ("compact", "delete")
    assert values["preallocate"] is False and values["min.cleanable.dirty.ratio"] == 0.5
    assert set(values) == set(TOPIC_CONFIGS)


# ============================================================================ znodes


def loads(data: bytes) -> Any:
    return json.loads(data)


def test_znode_values_use_kafkas_field_names() -> None:
    assert loads(znodes.cluster_id_value("abc")) == {"version": "1", "id": "abc"}
    assert loads(znodes.controller_value(3, 1234)) == {
        "version": 2, "brokerid": 3, "timestamp": "1234", "kraftControllerEpoch": -1}
    assert loads(BrokerRegistration(2, "h", 9092, timestamp_ms=55).value()) == {
        "features": {}, "listener_security_protocol_map": {"PLAINTEXT": "PLAINTEXT"},
        "endpoints": ["PLAINTEXT://h:9092"], "jmx_port": -1, "port": 9092, "host": "h",
        "version": 5, "timestamp": "55"}
    assert loads(BrokerRegistration(2, "h", 1, rack="r1").value())["rack"] == "r1"
    topic_id = bytes(range(16))
    assert loads(znodes.TopicAssignment(topic_id, {1: [0], 0: [0, 1]}).value()) == {
        "partitions": {"0": [0, 1], "1": [0]}, "topic_id": znodes.uuid_to_id(topic_id),
        "adding_replicas": {}, "removing_replicas": {}, "version": 3}
    assert loads(znodes.PartitionState(0, 4, [0], 2).value()) == {
        "controller_epoch": 2, "leader": 0, "version": 1, "leader_epoch": 4, "isr": [0]}
    assert loads(znodes.topic_config_value({"b": "2", "a": "1"})) == {
        "version": 1, "config": {"a": "1", "b": "2"}}
    assert loads(znodes.config_change_value("t")) == {"version": 2, "entity_path": "topics/t"}
    assert loads(znodes.producer_id_block_value(0, 1000, 1999)) == {
        "version": 1, "broker": 0, "block_start": "1000", "block_end": "1999"}
    assert znodes.topic_config_path("t") == "/config/topics/t"
    assert znodes.partition_state_path("t", 3) == "/brokers/topics/t/partitions/3/state"
    assert znodes.broker_path(7) == "/brokers/ids/7"


def test_znode_values_round_trip() -> None:
    assert znodes.parse_cluster_id(znodes.cluster_id_value("Xy-z_0123456789abcdefgh")) == \
        "Xy-z_0123456789abcdefgh"
    assert znodes.parse_controller(znodes.controller_value(5, 1)) == 5
    for registration in (BrokerRegistration(3, "example.com", 19092, "rack-a", 77),
                         BrokerRegistration(0, "::1", 9092)):
        assert BrokerRegistration.parse(registration.broker_id, registration.value()) == \
            registration
    assignment = znodes.TopicAssignment(b"\xfa" * 16, {0: [1, 0], 1: [0, 1], 2: [1]})
    assert znodes.TopicAssignment.parse(assignment.value()) == assignment
    state = znodes.PartitionState(1, 9, [1, 0], 3)
    assert znodes.PartitionState.parse(state.value()) == state
    configs = {"retention.ms": "1000", "cleanup.policy": "compact,delete"}
    assert znodes.parse_topic_config(znodes.topic_config_value(configs)) == configs
    assert znodes.parse_topic_config(None) == {} and znodes.parse_topic_config(b"") == {}
    assert znodes.parse_producer_id_block(znodes.producer_id_block_value(0, 5, 9)) == (5, 9)
    assert znodes.parse_producer_id_block(None) == (-1, -1)


def test_znodes_written_by_kafka_parse() -> None:
    """Values as a Kafka 3.x broker writes them (older versions and extra fields too)."""
    kafka_broker = (b'{"features":{},"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},'
                    b'"endpoints":["PLAINTEXT://kafka-1:9092"],"rack":"eu-1a","jmx_port":-1,'
                    b'"port":9092,"host":"kafka-1","version":5,"timestamp":"1700000000000"}')
    assert BrokerRegistration.parse(1, kafka_broker) == BrokerRegistration(
        1, "kafka-1", 9092, "eu-1a", 1700000000000)
    old_topic = b'{"version":2,"partitions":{"0":[1],"1":[2]},"adding_replicas":{}}'
    assert znodes.TopicAssignment.parse(old_topic) == znodes.TopicAssignment(
        bytes(16), {0: [1], 1: [2]})
    assert znodes.PartitionState.parse(
        b'{"controller_epoch":3,"leader":1,"version":1,"leader_epoch":7,"isr":[1,2]}') == \
        znodes.PartitionState(1, 7, [1, 2], 3)
    assert znodes.parse_controller(b'{"version":1,"brokerid":2,"timestamp":"1"}') == 2


@given(st.binary(min_size=16, max_size=16))
@settings(max_examples=200, deadline=None)
def test_topic_ids_round_trip_as_kafka_base64(raw: bytes) -> None:
    text = znodes.uuid_to_id(raw)
    assert len(text) == 22 and "=" not in text and "+" not in text and "/" not in text
    assert znodes.id_to_uuid(text) == raw


@given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=20), max_size=5))
@settings(max_examples=100, deadline=None)
def test_topic_config_values_round_trip(configs: dict[str, str]) -> None:
    assert znodes.parse_topic_config(znodes.topic_config_value(configs)) == configs


@given(st.dictionaries(st.integers(0, 1000), st.lists(st.integers(0, 100), min_size=1,
                                                      max_size=3), max_size=5),
       st.binary(min_size=16, max_size=16))
@settings(max_examples=100, deadline=None)
def test_topic_assignments_round_trip(replicas: dict[int, list[int]], topic_id: bytes) -> None:
    assignment = znodes.TopicAssignment(topic_id, replicas)
    assert znodes.TopicAssignment.parse(assignment.value()) == assignment


def test_records_helper_sanity() -> None:
    """The batches these tests produce are what the helpers say (keys, timestamps)."""
    raw = client_batch(2, base_timestamp=T0, timestamp_deltas=[0, 7])
    assert build_batch([Record(0, 0, b"k0", b"A" * 10), Record(1, 7, b"k1", b"B" * 10)],
                       base_timestamp=T0) == raw
