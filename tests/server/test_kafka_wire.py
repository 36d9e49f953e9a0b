"""The broker at the byte level: Kafka's answers to odd requests, and bad input.

Raw sockets speak the protocol here (the generated codec builds and reads the frames), so
that the tests can send what real clients would not: unknown API keys and versions, broken
CRCs, lying lengths, junk, oversized frames. Whatever one connection sends, the broker
keeps serving every other client and no acknowledged record is lost.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
from typing import Any

import confluent_kafka as ck
import pytest

from zoolog.protocol.kafka import record_batch as rb
from zoolog.protocol.kafka._generated.api_versions import ApiVersionsRequest, ApiVersionsResponse
from zoolog.protocol.kafka._generated.fetch import FetchRequest, FetchResponse
from zoolog.protocol.kafka._generated.metadata import MetadataRequest, MetadataResponse
from zoolog.protocol.kafka._generated.produce import ProduceRequest, ProduceResponse
from zoolog.protocol.kafka.codec import request_header_version, response_header_version
from zoolog.protocol.kafka.errors import Err
from zoolog.testing.kafka_servers import KafkaServerThread


class Raw:
    """One raw client connection."""

    def __init__(self, server: KafkaServerThread) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.kafka_port), timeout=10)
        self.correlation = 0

    def frame(self, api_key: int, version: int, body: bytes, correlation: int | None = None
              ) -> int:
        if correlation is None:
            self.correlation += 1
            correlation = self.correlation
        header = struct.pack(">hhi", api_key, version, correlation)
        if request_header_version(api_key, version) >= 1:
            header += struct.pack(">h", 4) + b"test"
        if request_header_version(api_key, version) >= 2:
            header += b"\x00"
        self.send_raw(struct.pack(">i", len(header) + len(body)) + header + body)
        return correlation

    def send(self, request: Any, version: int) -> int:
        return self.frame(request.API_KEY, version, request.to_bytes(version))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, response_cls: Any, version: int, header_version: int | None = None
             ) -> tuple[int, Any]:
        size = struct.unpack(">i", self._exactly(4))[0]
        frame = memoryview(self._exactly(size))
        correlation = struct.unpack_from(">i", frame)[0]
        if header_version is None:
            header_version = response_header_version(response_cls.API_KEY, version)
        pos = 4 + (1 if header_version >= 1 else 0)
        response, end = response_cls.decode(frame, pos, version)
        assert end == len(frame)
        return correlation, response

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return True

    def _exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by the broker")
            out += chunk
        return bytes(out)

    def close(self) -> None:
        self.sock.close()


def all_topics() -> MetadataRequest:
    request = MetadataRequest()
    request.topics = None  # null: every topic (None in __init__ means an empty list)
    return request


def batch(values: list[bytes], **kwargs: Any) -> bytes:
    return rb.build_batch([rb.Record(i, 0, None, v) for i, v in enumerate(values)],
                          base_timestamp=1_700_000_000_000, **kwargs)


def produce_request(topic: str, records: bytes | None, acks: int = 1) -> ProduceRequest:
    return ProduceRequest(acks=acks, timeout_ms=5000, topic_data=[
        ProduceRequest.TopicProduceData(name=topic, partition_data=[
            ProduceRequest.PartitionProduceData(index=0, records=records)])])


def produce_error(raw: Raw, topic: str, records: bytes | None, version: int = 9) -> Any:
    raw.send(produce_request(topic, records), version)
    _, response = raw.read(ProduceResponse, version)
    return response.responses[0].partition_responses[0]


@pytest.fixture
def server(zoolog_kafka: KafkaServerThread) -> KafkaServerThread:
    producer = ck.Producer({"bootstrap.servers": zoolog_kafka.bootstrap, "acks": "all"})
    for i in range(10):
        producer.produce("wire", f"before-{i}".encode())
    assert producer.flush(20) == 0
    return zoolog_kafka


def still_serving(server: KafkaServerThread, before: int = 10) -> None:
    """Another client produces and reads back everything, the records from before included."""
    producer = ck.Producer({"bootstrap.servers": server.bootstrap, "acks": "all"})
    producer.produce("wire", b"after")
    assert producer.flush(20) == 0
    consumer = ck.Consumer({"bootstrap.servers": server.bootstrap, "group.id": "check",
                            "enable.auto.commit": False})
    consumer.assign([ck.TopicPartition("wire", 0, 0)])
    values: list[bytes] = []
    for _ in range(100):
        for message in consumer.consume(100, 0.2):
            assert message.error() is None
            values.append(message.value())
        if values and values[-1] == b"after":
            break
    consumer.close()
    assert values[:before] == [f"before-{i}".encode() for i in range(before)]
    assert values[-1] == b"after"


def test_api_versions_advertises_what_clients_need_and_answers_unknown_versions_as_v0(
        server: KafkaServerThread) -> None:
    raw = Raw(server)
    raw.send(ApiVersionsRequest(client_software_name="t", client_software_version="1"), 3)
    _, response = raw.read(ApiVersionsResponse, 3)
    ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    assert ranges[0][0] == 0  # Produce from v0 (old librdkafka compresses only then)
    for key, pinned in {10: 0, 11: 0, 12: 0, 13: 0, 14: 0, 22: 0, 2: 1, 8: 2, 9: 1}.items():
        assert ranges[key][0] <= pinned <= ranges[key][1]
    assert not {68, 69, 71, 72} & set(ranges)
    correlation = raw.frame(18, 99, b"")
    got, unknown = raw.read(ApiVersionsResponse, 0, header_version=0)
    assert got == correlation and unknown.error_code == Err.UNSUPPORTED_VERSION
    assert [(k.api_key, k.min_version, k.max_version) for k in unknown.api_keys] == [
        (18, *ranges[18])]
    raw.close()


def test_versions_no_client_uses_are_answered_unsupported_in_their_own_version(
        server: KafkaServerThread) -> None:
    raw = Raw(server)
    partition = produce_error(raw, "wire", batch([b"x"]), version=2)
    assert partition.error_code == Err.UNSUPPORTED_VERSION
    raw.send(FetchRequest(max_wait_ms=0, topics=[]), 2)  # Fetch v0-3 are not advertised
    _, fetch = raw.read(FetchResponse, 2)
    assert fetch.responses == []
    raw.send(all_topics(), 12)  # the connection still works
    _, metadata = raw.read(MetadataResponse, 12)
    assert "wire" in {t.name for t in metadata.topics}
    raw.close()
    still_serving(server)


def test_unparseable_api_keys_versions_and_lying_lengths_close_only_that_connection(
        server: KafkaServerThread) -> None:
    cases = [
        struct.pack(">hhih", 999, 0, 1, -1),                   # unknown API key
        struct.pack(">hhih", 0, 77, 1, -1),                    # Produce v77
        struct.pack(">hhih", 3, 12, 1, -1) + b"\x00\x05",      # truncated header/body
        struct.pack(">hhih", 3, 4, 1, -1) + struct.pack(">i", 1 << 30),  # 2^30 topics
        struct.pack(">hhih", 0, 7, 1, 30000) + b"x" * 10,     # client id longer than frame
    ]
    for body in cases:
        raw = Raw(server)
        raw.send_raw(struct.pack(">i", len(body)) + body)
        assert raw.closed(), body
        raw.close()
    for size in (-5, 3, 200 << 20):  # frame sizes below a header or above the limit
        raw = Raw(server)
        raw.send_raw(struct.pack(">i", size) + b"\x00" * 8)
        assert raw.closed(), size
        raw.close()
    still_serving(server)


def test_junk_bytes_close_the_connection_and_the_broker_serves_on(
        server: KafkaServerThread) -> None:
    rng = random.Random(8)
    for _ in range(30):
        raw = Raw(server)
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        raw.send_raw(struct.pack(">i", len(junk)) + junk)
        raw.close()
    still_serving(server)


def test_valid_frames_with_random_bodies_never_break_the_broker(
        server: KafkaServerThread) -> None:
    rng = random.Random(11)
    keys = [0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 19, 20, 21, 22, 23, 32, 33, 37, 42,
            44, 47, 60, 61]
    for _ in range(150):
        key = rng.choice(keys)
        raw = Raw(server)
        version = rng.randrange(0, 10)
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        raw.frame(key, version, body)
        raw.sock.settimeout(2)
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            raw.sock.recv(1 << 16)  # an error response, or the connection closed
        raw.close()
    still_serving(server)


def test_bad_batches_get_kafka_errors_per_partition_and_nothing_is_appended(
        server: KafkaServerThread) -> None:
    raw = Raw(server)
    good = bytearray(batch([b"one", b"two"]))
    broken_crc = bytearray(good)
    broken_crc[-1] ^= 0xFF
    assert produce_error(raw, "wire", bytes(broken_crc)).error_code == Err.CORRUPT_MESSAGE
    assert produce_error(raw, "wire", bytes(good[:40])).error_code == Err.CORRUPT_MESSAGE
    old_magic = bytearray(good)
    old_magic[16] = 1
    assert (produce_error(raw, "wire", bytes(old_magic)).error_code
            == Err.UNSUPPORTED_FOR_MESSAGE_FORMAT)
    lying_count = batch([b"one", b"two"], last_offset_delta=5)
    assert produce_error(raw, "wire", lying_count).error_code == Err.INVALID_RECORD
    control = rb.control_batch(commit=True, producer_id=1, producer_epoch=0,
                               coordinator_epoch=0, timestamp_ms=1)
    assert produce_error(raw, "wire", control).error_code == Err.INVALID_RECORD
    assert produce_error(raw, "wire", None).error_code == Err.INVALID_RECORD
    assert produce_error(raw, "nope", bytes(good)).error_code in (
        Err.NONE, Err.UNKNOWN_TOPIC_OR_PARTITION)  # auto-created, or unknown
    answer = produce_error(raw, "__consumer_offsets", bytes(good))
    assert answer.error_code == Err.INVALID_TOPIC_EXCEPTION
    raw.send(produce_request("wire", bytes(good), acks=5), 9)
    _, response = raw.read(ProduceResponse, 9)
    assert response.responses[0].partition_responses[0].error_code == Err.INVALID_REQUIRED_ACKS
    raw.close()
    still_serving(server)


def test_message_too_large_and_compacted_topic_keys(server: KafkaServerThread) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic("small", 1, 1, config={"max.message.bytes": "1000"}),
                         NewTopic("keyed", 1, 1, config={"cleanup.policy": "compact"})])
    raw = Raw(server)
    for _ in range(50):
        raw.send(MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="small"),
                                         MetadataRequest.MetadataRequestTopic(name="keyed")],
                                 allow_auto_topic_creation=False), 12)
        _, metadata = raw.read(MetadataResponse, 12)
        if all(t.error_code == 0 for t in metadata.topics):
            break
    partition = produce_error(raw, "small", batch([b"x" * 2000]))
    assert partition.error_code == Err.MESSAGE_TOO_LARGE
    partition = produce_error(raw, "keyed", batch([b"no key"]))
    assert partition.error_code == Err.INVALID_RECORD
    assert partition.record_errors[0].batch_index == 0
    assert "key" in (partition.error_message or "")
    raw.close()


def test_acks_0_failure_closes_the_connection_without_a_response(
        server: KafkaServerThread) -> None:
    raw = Raw(server)
    raw.send(produce_request("wire", batch([b"fire and forget"]), acks=0), 9)
    raw.send(all_topics(), 12)  # the next response is Metadata's
    _, metadata = raw.read(MetadataResponse, 12)
    assert metadata.brokers
    broken = bytearray(batch([b"bad"]))
    broken[-1] ^= 1
    raw.send(produce_request("wire", bytes(broken), acks=0), 9)
    assert raw.closed()
    raw.close()
    still_serving(server)


def test_pipelined_responses_come_back_in_request_order(server: KafkaServerThread) -> None:
    raw = Raw(server)
    sent = []
    for i in range(60):
        if i % 3 == 0:
            sent.append((raw.send(all_topics(), 12), MetadataResponse, 12))
        elif i % 3 == 1:
            sent.append((raw.send(produce_request("wire", batch([b"p%d" % i]), acks=-1), 9),
                         ProduceResponse, 9))
        else:
            sent.append((raw.send(ApiVersionsRequest(), 3), ApiVersionsResponse, 3))
    for correlation, cls, version in sent:
        got, _ = raw.read(cls, version)
        assert got == correlation
    raw.close()
