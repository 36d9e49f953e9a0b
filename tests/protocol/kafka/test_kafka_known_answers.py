"""Known answers: our encodings equal bytes written down from the protocol guide by hand, and
bytes from an independent implementation (kafka-python 3's own encoders, `kafka.protocol`) for
the same values; both decode back to what was encoded.

kafka-python is not among zoolog's test dependencies: its tests are skipped where it is not
installed (the hand-written cases always run).
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from zoolog.protocol.kafka import _generated as gen
from zoolog.protocol.kafka import codec


def i16(n: int) -> bytes:
    return struct.pack(">h", n)


def i32(n: int) -> bytes:
    return struct.pack(">i", n)


def i64(n: int) -> bytes:
    return struct.pack(">q", n)


def s16(text: str) -> bytes:
    """A classic string: int16 length, then UTF-8."""
    return i16(len(text)) + text.encode()


def cs(text: str) -> bytes:
    """A compact string (lengths under 127): length + 1 as one varint byte, then UTF-8."""
    return bytes((len(text) + 1,)) + text.encode()


def round_trips(message: Any, version: int, expected: bytes) -> None:
    assert message.to_bytes(version) == expected
    decoded, pos = type(message).decode(memoryview(expected), 0, version)
    assert pos == len(expected) and decoded == message


# -- hand-written, from the protocol guide ------------------------------------------------------


def test_api_versions_request() -> None:
    round_trips(gen.ApiVersionsRequest(), 0, b"")
    request = gen.ApiVersionsRequest(client_software_name="zoolog", client_software_version="1")
    round_trips(request, 3, cs("zoolog") + cs("1") + b"\x00")


def test_api_versions_response() -> None:
    R = gen.ApiVersionsResponse
    response = R(error_code=0, api_keys=[R.ApiVersion(api_key=18, min_version=0, max_version=3)],
                 throttle_time_ms=0)
    round_trips(response, 0, i16(0) + i32(1) + i16(18) + i16(0) + i16(3))
    # v3: compact array (count + 1), each element with its own tagged-field section, then the
    # throttle time and the message's tagged fields
    round_trips(response, 3, i16(0) + b"\x02" + i16(18) + i16(0) + i16(3) + b"\x00" + i32(0)
                + b"\x00")


def test_metadata_request() -> None:
    M = gen.MetadataRequest
    request = M(topics=[M.MetadataRequestTopic(name="orders")])
    round_trips(request, 1, i32(1) + s16("orders"))
    request.topics = None  # all topics
    round_trips(request, 1, i32(-1))
    topic_id = bytes(range(16))
    request = M(topics=[M.MetadataRequestTopic(topic_id=topic_id, name="orders")],
                allow_auto_topic_creation=True, include_topic_authorized_operations=False)
    round_trips(request, 12, b"\x02" + topic_id + cs("orders") + b"\x00" + b"\x01\x00" + b"\x00")


def test_produce_request_v3() -> None:
    P = gen.ProduceRequest
    request = P(transactional_id="tx", acks=-1, timeout_ms=30_000, topic_data=[
        P.TopicProduceData(name="t", partition_data=[
            P.PartitionProduceData(index=0, records=b"\x00" * 5)])])
    round_trips(request, 3, s16("tx") + i16(-1) + i32(30_000) + i32(1) + s16("t") + i32(1)
                + i32(0) + i32(5) + b"\x00" * 5)


def test_request_and_response_headers() -> None:
    header = gen.RequestHeader(request_api_key=18, request_api_version=3, correlation_id=1,
                               client_id="c")
    round_trips(header, 1, i16(18) + i16(3) + i32(1) + s16("c"))
    round_trips(header, 2, i16(18) + i16(3) + i32(1) + s16("c") + b"\x00")
    round_trips(gen.ResponseHeader(correlation_id=1), 0, i32(1))
    round_trips(gen.ResponseHeader(correlation_id=1), 1, i32(1) + b"\x00")


def test_api_versions_response_header_is_v0_even_when_flexible() -> None:
    assert gen.ApiVersionsResponse.FLEXIBLE_FROM == 3
    assert codec.response_header_version(18, 3) == 0
    assert codec.request_header_version(18, 3) == 2  # the request header is flexible
    assert codec.response_header_version(3, 12) == 1


def test_coordinator_records() -> None:
    key = gen.OffsetCommitKey(group="g", topic="t", partition=3)
    round_trips(key, 1, s16("g") + s16("t") + i32(3))
    value = gen.OffsetCommitValue(offset=10, leader_epoch=2, metadata="", commit_timestamp=7)
    round_trips(value, 3, i64(10) + i32(2) + s16("") + i64(7))
    txn = gen.TransactionLogValue(producer_id=5, producer_epoch=1, transaction_timeout_ms=60_000,
                                  transaction_status=0, previous_producer_id=4)
    txn.transaction_partitions = None  # (None passed to __init__ means a new empty list)
    # v1 is flexible: previous producer id (tag 0) differs from its default -1 and is written
    round_trips(txn, 1, i64(5) + i16(1) + i32(60_000) + b"\x00" + b"\x00" + i64(0) + i64(0)
                + b"\x01" + b"\x00\x08" + i64(4))


# -- the same values through kafka-python's encoders --------------------------------------------

def kafka_python(module: str) -> Any:
    return pytest.importorskip(f"kafka.protocol.{module}", reason="kafka-python is not installed")


def _load_generator() -> ModuleType:
    path = Path(__file__).resolve().parents[3] / "tools" / "gen_kafka.py"
    spec = importlib.util.spec_from_file_location("gen_kafka", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_kafka", module)
    spec.loader.exec_module(module)
    return module


SCHEMAS = {m.name: m for m in _load_generator().parse_all()}


def to_kafka_python(obj: Any, kp_cls: Any, msg: Any, version: int, top: bool = True) -> Any:
    """Our object as kafka-python's, field by field (both use the snake_case schema names).
    Tagged fields at their default are left out (kafka-python writes a tagged field whenever it
    was given one); uuids become uuid.UUID."""
    name = type(obj).__name__
    struct = msg.top if top else msg.structs[name]
    fresh = type(obj)()
    values = {}
    for f in struct.fields:
        value = getattr(obj, f.attr)
        if version not in f.versions or (version in f.tagged and value == getattr(fresh, f.attr)):
            continue
        if f.struct_name is not None and value is not None:
            child = getattr(kp_cls, f.struct_name)
            if f.is_array:
                value = [to_kafka_python(e, child, msg, version, False) for e in value]
            else:
                value = to_kafka_python(value, child, msg, version, False)
        elif f.type == "uuid":
            value = uuid.UUID(bytes=value)
        values[f.attr] = value
    return kp_cls[version](**values) if top else kp_cls(**values)


def same_as_kafka_python(message: Any, kp_cls: Any, version: int) -> None:
    ours = message.to_bytes(version)
    theirs = to_kafka_python(message, kp_cls, SCHEMAS[type(message).__name__], version).encode()
    assert ours == theirs
    decoded, pos = type(message).decode(memoryview(theirs), 0, version)
    assert pos == len(theirs) and decoded.to_bytes(version) == ours


def test_api_versions_like_kafka_python() -> None:
    metadata = kafka_python("metadata")
    ApiVersionsRequest = metadata.ApiVersionsRequest
    ApiVersionsResponse = metadata.ApiVersionsResponse

    same_as_kafka_python(gen.ApiVersionsRequest(), ApiVersionsRequest, 0)
    same_as_kafka_python(
        gen.ApiVersionsRequest(client_software_name="zoolog", client_software_version="0.1.0"),
        ApiVersionsRequest, 3)
    R = gen.ApiVersionsResponse
    response = R(error_code=0, throttle_time_ms=5, api_keys=[
        R.ApiVersion(api_key=key, min_version=0, max_version=cls.VALID_VERSIONS[1])
        for key, cls in sorted(gen.REQUESTS.items())])
    same_as_kafka_python(response, ApiVersionsResponse, 0)
    same_as_kafka_python(response, ApiVersionsResponse, 3)


def test_metadata_request_like_kafka_python() -> None:
    MetadataRequest = kafka_python("metadata").MetadataRequest

    M = gen.MetadataRequest
    request = M(topics=[M.MetadataRequestTopic(name="a"), M.MetadataRequestTopic(name="bb")])
    same_as_kafka_python(request, MetadataRequest, 1)
    request.allow_auto_topic_creation = False
    request.include_topic_authorized_operations = True
    request.topics[0].topic_id = bytes(range(16))
    same_as_kafka_python(request, MetadataRequest, 12)


def test_produce_request_like_kafka_python() -> None:
    ProduceRequest = kafka_python("producer").ProduceRequest

    P = gen.ProduceRequest
    request = P(transactional_id="tx-1", acks=-1, timeout_ms=30_000, topic_data=[
        P.TopicProduceData(name="orders", partition_data=[
            P.PartitionProduceData(index=0, records=bytes(range(256)) * 4),
            P.PartitionProduceData(index=1, records=None),
        ]),
        P.TopicProduceData(name="empty", partition_data=[]),
    ])
    same_as_kafka_python(request, ProduceRequest, 3)
    same_as_kafka_python(request, ProduceRequest, 9)


def fetch_response() -> Any:
    F = gen.FetchResponse
    return F(throttle_time_ms=1, error_code=0, session_id=77, responses=[
        F.FetchableTopicResponse(topic="orders", partitions=[
            F.PartitionData(partition_index=0, error_code=0, high_watermark=100,
                            last_stable_offset=90, log_start_offset=0,
                            aborted_transactions=[F.AbortedTransaction(producer_id=9,
                                                                       first_offset=95)],
                            records=b"batch-bytes"),
            F.PartitionData(partition_index=1, error_code=6, high_watermark=-1,
                            aborted_transactions=None, records=None),
        ])])


def test_fetch_response_like_kafka_python() -> None:
    FetchResponse = kafka_python("consumer").FetchResponse

    response = fetch_response()
    same_as_kafka_python(response, FetchResponse, 4)
    response.responses[0].partitions[0].preferred_read_replica = 2
    same_as_kafka_python(response, FetchResponse, 12)
    # with a tagged field set (CurrentLeader, tag 1)
    response.responses[0].partitions[1].current_leader.leader_id = 3
    response.responses[0].partitions[1].current_leader.leader_epoch = 8
    same_as_kafka_python(response, FetchResponse, 12)


def test_join_group_like_kafka_python() -> None:
    consumer = kafka_python("consumer")
    JoinGroupRequest, JoinGroupResponse = consumer.JoinGroupRequest, consumer.JoinGroupResponse

    J = gen.JoinGroupRequest
    request = J(group_id="g", session_timeout_ms=10_000, rebalance_timeout_ms=30_000,
                member_id="", group_instance_id="static-1", protocol_type="consumer",
                protocols=[J.JoinGroupRequestProtocol(name="range", metadata=b"\x00\x01sub")])
    same_as_kafka_python(request, JoinGroupRequest, 5)
    R = gen.JoinGroupResponse
    response = R(throttle_time_ms=0, error_code=0, generation_id=3, protocol_name="range",
                 leader="m-1", member_id="m-2", members=[
                     R.JoinGroupResponseMember(member_id="m-1", group_instance_id=None,
                                               metadata=b"meta")])
    same_as_kafka_python(response, JoinGroupResponse, 5)
