"""`zoolog.client.kafka` against the zoolog broker over real sockets, against real clients
(confluent-kafka, kafka-python) for interop, and against a scripted fake broker for the
version negotiation a non-zoolog broker needs."""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import confluent_kafka as ck
import pytest
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from zoolog.client.kafka import (
    CLIENT_VERSIONS,
    EARLIEST,
    LATEST,
    READ_COMMITTED,
    READ_UNCOMMITTED,
    KafkaClient,
    KafkaConnectionError,
    KafkaResponseError,
    KafkaTimeoutError,
    ProducerRecord,
    TopicPartition,
    _fetched,
    decode_assignment,
    decode_subscription,
    default_partition,
    encode_assignment,
    encode_subscription,
    murmur2,
    range_assign,
)
from zoolog.protocol.kafka import record_batch as rb
from zoolog.protocol.kafka._generated import REQUESTS
from zoolog.protocol.kafka._generated.api_versions import ApiVersionsResponse
from zoolog.protocol.kafka._generated.consumer_protocol import ConsumerProtocolAssignment
from zoolog.protocol.kafka._generated.fetch import FetchResponse
from zoolog.protocol.kafka._generated.metadata import MetadataResponse
from zoolog.protocol.kafka.codec import request_header_version, response_header_version
from zoolog.protocol.kafka.connection import read_request_header, response_prefix
from zoolog.protocol.kafka.errors import Err
from zoolog.testing.kafka_servers import KafkaServerThread

# Kafka's UtilsTest.testMurmur2 vectors (Java's signed ints)
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
    b"": 275646681,
}


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def with_client(server: KafkaServerThread,
                body: Callable[[KafkaClient], Awaitable[Any]], **options: Any) -> Any:
    async def go() -> Any:
        client = await KafkaClient.connect(server.bootstrap, **options)
        try:
            return await body(client)
        finally:
            await client.close()
    return run(go())


# --- pure parts -----------------------------------------------------------------------------


def test_murmur2_matches_the_java_client_and_kafka_python() -> None:
    assert murmur2(b"") == 275646681
    for data, expected in JAVA_MURMUR2.items():
        assert murmur2(data) == expected
    rng = random.Random(7)
    for _ in range(2000):
        data = rng.randbytes(rng.randrange(0, 40))
        assert murmur2(data) & 0xFFFFFFFF == kafka_python_murmur2(data)
        for count in (1, 3, 7, 64):
            # kafka-python's DefaultPartitioner: murmur2 & 0x7fffffff % count
            assert default_partition(data, count) == \
                (kafka_python_murmur2(data) & 0x7FFFFFFF) % count
    # toPositive, not abs: a negative hash keeps its low 31 bits
    assert default_partition(b"21", 1000) == (-973932308 & 0x7FFFFFFF) % 1000
    with pytest.raises(ValueError):
        default_partition(b"x", 0)


def test_range_assignor_matches_kafka() -> None:
    # 3 members, 7 partitions: the first member (by id) takes the one left over
    plan = range_assign({"c": ["t"], "a": ["t", "u"], "b": ["t"]}, {"t": 7, "u": 2})
    assert plan == {"a": {"t": [0, 1, 2], "u": [0, 1]}, "b": {"t": [3, 4]}, "c": {"t": [5, 6]}}
    # more members than partitions: the last ones get nothing
    assert range_assign({"m1": ["t"], "m2": ["t"]}, {"t": 1}) == {"m1": {"t": [0]}, "m2": {}}


def test_consumer_protocol_round_trips_and_newer_versions() -> None:
    assert decode_subscription(encode_subscription(["b", "a", "a"])) == ["a", "b"]
    assert decode_assignment(encode_assignment({"t": [2, 0], "u": [1]})) == \
        {"t": [0, 2], "u": [1]}
    assert decode_assignment(b"") == {}
    assert decode_assignment(b"\x00") is None
    assert decode_subscription(b"\x00\x00\xff") is None
    # a v3 assignment with user data, as a newer Java client writes it
    v3 = ConsumerProtocolAssignment(assigned_partitions=[
        ConsumerProtocolAssignment.TopicPartition(topic="t", partitions=[4])],
        user_data=b"opaque")
    assert decode_assignment(struct.pack(">h", 3) + v3.to_bytes(3)) == {"t": [4]}
    # a version from the future decodes as the newest known (fields only ever trail)
    assert decode_assignment(struct.pack(">h", 9) + v3.to_bytes(3)) == {"t": [4]}


def _partition_data(records: bytes, aborted: list[tuple[int, int]] | None = None) -> Any:
    p = FetchResponse.PartitionData(partition_index=0, high_watermark=100,
                                    last_stable_offset=100, log_start_offset=0,
                                    records=records)
    p.aborted_transactions = [FetchResponse.AbortedTransaction(producer_id=pid,
                                                               first_offset=first)
                              for pid, first in aborted or []]
    return p


def test_fetched_drops_aborted_transactions_in_read_committed_only() -> None:
    def txn(base: int, pid: int, values: list[bytes]) -> bytes:
        return rb.build_batch([rb.Record(i, 0, None, v) for i, v in enumerate(values)],
                              base_offset=base, producer_id=pid, producer_epoch=0,
                              base_sequence=0, transactional=True)

    def marker(base: int, pid: int, commit: bool) -> bytes:
        data = bytearray(rb.control_batch(commit=commit, producer_id=pid, producer_epoch=0,
                                          coordinator_epoch=0, timestamp_ms=0))
        rb.stamp(data, base, 0)
        return bytes(data)

    plain = rb.build_batch([rb.Record(0, 0, None, b"plain")], base_offset=6)
    log = (txn(0, 7, [b"a0", b"a1"]) + txn(2, 8, [b"c0"]) + marker(3, 7, False)
           + marker(4, 8, True) + txn(5, 7, [b"a-later"]) + plain)
    tp = TopicPartition("t", 0)
    # producer 7 aborted from offset 0 (its later batch at 5 is another, open transaction)
    committed = _fetched(tp, 0, _partition_data(log, [(7, 0)]), READ_COMMITTED)
    assert [r.value for r in committed.records] == [b"c0", b"a-later", b"plain"]
    assert committed.next_offset == 7
    uncommitted = _fetched(tp, 0, _partition_data(log, [(7, 0)]), READ_UNCOMMITTED)
    assert [r.value for r in uncommitted.records] == [b"a0", b"a1", b"c0", b"a-later",
                                                      b"plain"]
    # a position inside a batch skips the records before it, control batches never show
    assert [r.offset for r in _fetched(tp, 1, _partition_data(log), READ_UNCOMMITTED).records
            ] == [1, 2, 5, 6]


# --- against the zoolog broker --------------------------------------------------------------


def test_versions_negotiated_as_min_of_ours_and_the_brokers(
        zoolog_kafka: KafkaServerThread) -> None:
    async def body(client: KafkaClient) -> None:
        theirs = await client.api_versions()
        for api_key, (low, high) in CLIENT_VERSIONS.items():
            their_low, their_high = theirs[api_key]
            assert await client.negotiated_version(api_key) == min(high, their_high)
            assert max(low, their_low) <= min(high, their_high)
    with_client(zoolog_kafka, body)

    # a client whose range is capped speaks its own max
    async def capped(client: KafkaClient) -> None:
        assert await client.negotiated_version(3) == 5
        assert (await client.list_topics()) == []
    with_client(zoolog_kafka, capped, versions={3: (1, 5)})

    # ranges that do not meet: UNSUPPORTED_VERSION naming both
    async def disjoint(client: KafkaClient) -> None:
        await client.create_topic("t", 1, 1)
        with pytest.raises(KafkaResponseError) as info:
            await client.fetch({TopicPartition("t", 0): 0})
        assert info.value.code == Err.UNSUPPORTED_VERSION
        assert info.value.name == "UNSUPPORTED_VERSION"
        assert "Fetch" in str(info.value) and "14..17" in str(info.value)
    with_client(zoolog_kafka, disjoint, versions={1: (14, 17)})


def test_admin_topics_and_configs(zoolog_kafka: KafkaServerThread) -> None:
    async def body(client: KafkaClient) -> None:
        created = await client.create_topic("orders", 3, 1, {"retention.ms": "3600000"})
        assert (created.name, created.partitions, created.replication_factor) == \
            ("orders", 3, 1)
        assert len(created.topic_id) == 16 and created.topic_id != bytes(16)
        with pytest.raises(KafkaResponseError) as info:
            await client.create_topic("orders", 3, 1)
        assert (info.value.code, info.value.name) == (36, "TOPIC_ALREADY_EXISTS")
        with pytest.raises(KafkaResponseError) as info:
            await client.create_topic("bad", 1, 1, {"no.such.config": "1"})
        assert info.value.name == "INVALID_CONFIG" and "no.such.config" in info.value.message
        validated = await client.create_topic("dry", 2, 1, validate_only=True)
        assert validated.partitions == 2
        assert [t.name for t in await client.list_topics()] == ["orders"]
        assert "__consumer_offsets" not in [t.name for t in await client.list_topics()]

        info_ = await client.topic("orders", refresh=True)
        assert sorted(info_.partitions) == [0, 1, 2]
        assert all(p.leader == 0 and p.isr == (0,) for p in info_.partitions.values())
        assert info_.topic_id == created.topic_id

        overrides = {c.name: c.value for c in await client.describe_configs("orders")
                     if c.source == "DYNAMIC_TOPIC_CONFIG"}
        assert overrides == {"retention.ms": "3600000"}
        await client.alter_topic_config("orders", {"cleanup.policy": "compact"},
                                        ["retention.ms"])
        entries = {c.name: c for c in await client.describe_configs("orders")}
        assert entries["cleanup.policy"].value == "compact"
        assert entries["retention.ms"].is_default
        with pytest.raises(KafkaResponseError) as info:
            await client.alter_topic_config("orders", {"retention.ms": "soon"})
        assert info.value.name == "INVALID_CONFIG"

        results = await client.delete_topics(["orders", "missing"])
        assert results["orders"] is None
        missing = results["missing"]
        assert missing is not None and missing.code == Err.UNKNOWN_TOPIC_OR_PARTITION
        with pytest.raises(KafkaResponseError) as info:
            await client.topic("orders", refresh=True)
        assert info.value.code == Err.UNKNOWN_TOPIC_OR_PARTITION
        await client.create_topic("orders", 1, 1)  # the same client sees it come back
        assert len((await client.topic("orders")).partitions) == 1
    with_client(zoolog_kafka, body)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_fetch_round_trip(zoolog_kafka: KafkaServerThread, codec: str) -> None:
    async def body(client: KafkaClient) -> None:
        await client.create_topic("rt", 4, 1)
        records = [ProducerRecord(f"v{i}".encode(), f"k{i % 5}".encode(),
                                  (("n", str(i).encode()), ("null", None)))
                   for i in range(50)]
        records.append(ProducerRecord(None, None, (), 2, 1_600_000_000_000))
        landed = await client.produce("rt", records, codec=rb.CODEC_NAMES[codec])
        assert len(landed) == 51
        for record, where in zip(records, landed, strict=True):
            expected = record.partition if record.partition is not None else \
                default_partition(record.key or b"", 4)
            assert where.partition == expected
        assert landed[-1].timestamp_ms == 1_600_000_000_000
        per_partition: dict[int, list[int]] = {}
        for where in landed:
            per_partition.setdefault(where.partition, []).append(where.offset)
        for offsets in per_partition.values():
            assert offsets == list(range(len(offsets)))
        positions = {TopicPartition("rt", p): 0 for p in range(4)}
        got: dict[tuple[int, int], Any] = {}
        while any(positions[tp] < len(per_partition.get(tp.partition, []))
                  for tp in positions):
            fetched = await client.fetch(positions, max_wait_ms=100)
            for tp, result in fetched.items():
                assert result.error is None
                for r in result.records:
                    got[(r.partition, r.offset)] = r
                positions[tp] = result.next_offset
        assert len(got) == 51
        for record, where in zip(records, landed, strict=True):
            r = got[(where.partition, where.offset)]
            assert (r.key, r.value, r.headers) == (record.key, record.value, record.headers)
            assert r.timestamp_ms == where.timestamp_ms
        # a fetch from the middle of a (compressed) batch starts exactly there
        busy = TopicPartition("rt", landed[0].partition)
        middle = (await client.fetch({busy: 2}))[busy].records
        assert middle[0].offset == 2

        ranges = await client.offset_range("rt")
        assert ranges == {p: (0, len(per_partition.get(p, []))) for p in range(4)}
        found = await client.list_offsets("rt", 1_500_000_000_000, [2])
        assert found[2].offset == 0
        latest = await client.list_offsets("rt", LATEST)
        earliest = await client.list_offsets("rt", EARLIEST)
        assert {p: o.offset for p, o in latest.items()} == {p: r[1] for p, r in ranges.items()}
        assert {p: o.offset for p, o in earliest.items()} == {p: 0 for p in range(4)}
        out_of_range = await client.fetch({TopicPartition("rt", 0): 10_000})
        error = out_of_range[TopicPartition("rt", 0)].error
        assert error is not None and error.name == "OFFSET_OUT_OF_RANGE"
        with pytest.raises(ValueError):
            await client.produce("rt", [ProducerRecord(b"x", partition=9)])
        with pytest.raises(KafkaResponseError) as info:
            await client.produce("nope", [ProducerRecord(b"x")])
        assert info.value.code == Err.UNKNOWN_TOPIC_OR_PARTITION
    with_client(zoolog_kafka, body)


def test_round_robin_acks_and_large_inputs_split_into_batches(
        zoolog_kafka: KafkaServerThread) -> None:
    async def body(client: KafkaClient) -> None:
        await client.create_topic("rr", 3, 1)
        landed = await client.produce("rr", [ProducerRecord(b"x")] * 9, acks=1)
        assert sorted(r.partition for r in landed) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        blind = await client.produce("rr", [ProducerRecord(b"y")] * 3, acks=0)
        assert [r.offset for r in blind] == [-1, -1, -1]
        # 3 MB to one partition: more than one batch (one per request), order kept
        big = [ProducerRecord(b"%06d" % i + b"." * 3000, partition=1) for i in range(1000)]
        landed = await client.produce("rr", big)
        assert [r.offset for r in landed] == list(range(landed[0].offset,
                                                       landed[0].offset + 1000))
        with pytest.raises(ValueError):
            await client.produce("rr", [ProducerRecord(b"x")], acks=2)
    with_client(zoolog_kafka, body)


def test_concurrent_produce_calls_land_in_call_order(zoolog_kafka: KafkaServerThread) -> None:
    """The first call may still wait for its connection to open when the second finds it
    open: the requests must still be written in call order."""
    async def body() -> None:
        setup = await KafkaClient.connect(zoolog_kafka.bootstrap)
        await setup.create_topic("order", 1, 1)
        await setup.close()
        for hops in range(0, 400, 10):  # stagger the second call by 0..390 loop passes
            client = await KafkaClient.connect(zoolog_kafka.bootstrap)
            try:
                await client.topic("order")
                first = asyncio.ensure_future(client.produce(
                    "order", [ProducerRecord(b"first")], codec=rb.Codec.LZ4))
                for _ in range(hops):
                    await asyncio.sleep(0)
                second = asyncio.ensure_future(client.produce(
                    "order", [ProducerRecord(b"second")] * 49, codec=rb.Codec.LZ4))
                (a,), b = await first, await second
                assert a.offset < b[0].offset, hops
            finally:
                await client.close()
    run(body())


def test_interop_with_confluent_kafka_both_ways(zoolog_kafka: KafkaServerThread) -> None:
    async def make(client: KafkaClient) -> None:
        await client.create_topic("interop", 6, 1)
    with_client(zoolog_kafka, make)
    # librdkafka's murmur2_random partitioner is the Java client's: same key, same partition
    producer = ck.Producer({"bootstrap.servers": zoolog_kafka.bootstrap,
                            "partitioner": "murmur2_random", "compression.type": "lz4"})
    for i in range(30):
        producer.produce("interop", key=f"key-{i}".encode(), value=f"ck-{i}".encode(),
                         headers=[("from", b"ck")], timestamp=1_700_000_000_000 + i)
    assert producer.flush(20) == 0

    async def read(client: KafkaClient) -> None:
        ranges = await client.offset_range("interop")
        positions = {TopicPartition("interop", p): 0 for p in ranges}
        seen = []
        while any(positions[tp] < ranges[tp.partition][1] for tp in positions):
            for tp, result in (await client.fetch(positions, max_wait_ms=100)).items():
                seen.extend(result.records)
                positions[tp] = result.next_offset
        assert len(seen) == 30
        for r in seen:
            i = int(r.value.split(b"-")[1]) if r.value else -1
            assert r.key == f"key-{i}".encode()
            assert r.partition == default_partition(r.key, 6)
            assert r.headers == (("from", b"ck"),)
            assert r.timestamp_ms == 1_700_000_000_000 + i
        await client.produce("interop", [ProducerRecord(f"zl-{i}".encode(),
                                                        f"key-{i}".encode(), (("from", b"zl"),))
                                         for i in range(30)], codec=rb.Codec.ZSTD)
    with_client(zoolog_kafka, read)

    consumer = ck.Consumer({"bootstrap.servers": zoolog_kafka.bootstrap, "group.id": "check",
                            "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["interop"])
    got: list[ck.Message] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < 60 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got.append(message)
    finally:
        consumer.close()
    ours = [m for m in got if (m.value() or b"").startswith(b"zl-")]
    assert len(ours) == 30
    by_key = {m.key(): m.partition() for m in got if (m.value() or b"").startswith(b"ck-")}
    for m in ours:
        assert m.partition() == by_key[m.key()]  # same key, same partition as librdkafka
        assert m.headers() == [("from", b"zl")]


def test_groups_join_assign_commit_and_leave(zoolog_kafka: KafkaServerThread) -> None:
    async def body(client: KafkaClient) -> None:
        await client.create_topic("g", 5, 1)
        await client.produce("g", [ProducerRecord(b"v", partition=p) for p in range(5)] * 4)
        first = client.group_consumer("workers", ["g"], heartbeat_interval_ms=100,
                                      session_timeout_ms=10_000)
        assert await first.join() == {"g": [0, 1, 2, 3, 4]}
        assert first.generation_id >= 1 and first.member_id
        await first.commit({TopicPartition("g", 0): 3})

        second = client.group_consumer("workers", ["g"], heartbeat_interval_ms=100,
                                       session_timeout_ms=10_000)
        joined = asyncio.ensure_future(second.join())
        deadline = time.monotonic() + 20
        while not first.rebalance_needed:  # its heartbeat hears of the rebalance
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await first.join()
        await joined
        assert first.generation_id == second.generation_id
        mine = {first.member_id: first.assignment, second.member_id: second.assignment}
        assert mine == range_assign({first.member_id: ["g"], second.member_id: ["g"]},
                                    {"g": 5})
        described = await client.describe_group("workers")
        assert described.state == "Stable" and described.protocol == "range"
        assert described.protocol_type == "consumer"
        assert {m.member_id: m.assignment for m in described.members} == mine
        assert all(m.subscription == ["g"] and m.client_id == "zoolog"
                   for m in described.members)
        listed = await client.list_groups()
        assert [(g.group_id, g.protocol_type, g.state) for g in listed] == \
            [("workers", "consumer", "Stable")]
        deleted = await client.delete_groups(["workers"])
        error = deleted["workers"]
        assert error is not None and error.name == "NON_EMPTY_GROUP"
        with pytest.raises(KafkaResponseError) as info:  # a simple commit needs no members
            await client.commit_offsets("workers", {TopicPartition("g", 0): 1})
        assert info.value.code in (Err.UNKNOWN_MEMBER_ID, Err.ILLEGAL_GENERATION)

        await first.leave()
        await second.leave()
        assert (await client.describe_group("workers")).state == "Empty"
        await client.commit_offsets("workers", {TopicPartition("g", 4): 2})
        assert await client.fetch_committed("workers") == {TopicPartition("g", 0): 3,
                                                            TopicPartition("g", 4): 2}
        assert await client.fetch_committed("workers", [TopicPartition("g", 1)]) == \
            {TopicPartition("g", 1): -1}
        deleted = await client.delete_groups(["workers", "never"])
        assert deleted["workers"] is None
        never = deleted["never"]
        assert never is not None and never.name == "GROUP_ID_NOT_FOUND"
    with_client(zoolog_kafka, body)


def test_reconnects_after_the_broker_restarts(zoolog_kafka: KafkaServerThread) -> None:
    async def body() -> None:
        client = await KafkaClient.connect(zoolog_kafka.bootstrap)
        try:
            await client.create_topic("r", 1, 1)
            await client.produce("r", [ProducerRecord(b"before")])
            await asyncio.to_thread(zoolog_kafka.restart)
            # the dropped connections are opened again by the next requests
            landed = await client.produce("r", [ProducerRecord(b"after")])
            assert landed[0].offset == 1
            fetched = await client.fetch({TopicPartition("r", 0): 0})
            assert [r.value for r in fetched[TopicPartition("r", 0)].records] == \
                [b"before", b"after"]
        finally:
            await client.close()
    run(body())


def test_unreachable_bootstrap_is_a_connection_error() -> None:
    async def body() -> None:
        with pytest.raises(KafkaConnectionError) as info:
            await KafkaClient.connect("127.0.0.1:1,127.0.0.1:2", retry_timeout_ms=200)
        assert "127.0.0.1:1" in str(info.value) and "127.0.0.1:2" in str(info.value)
    run(body())


# --- a scripted broker: what a non-zoolog broker may answer ----------------------------------


class FakeBroker:
    """Answers ApiVersions and Metadata as scripted; records (api_key, version) asked."""

    def __init__(self, api_versions_max: int, advertised: dict[int, tuple[int, int]],
                 silent: bool = False) -> None:
        self.api_versions_max = api_versions_max
        self.advertised = advertised
        self.silent = silent
        self.seen: list[tuple[int, int]] = []
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                frame = memoryview(await reader.readexactly(size))
                api_key, version = struct.unpack_from(">hh", frame, 0)
                self.seen.append((api_key, version))
                head = read_request_header(frame, request_header_version(api_key, version))
                REQUESTS[api_key].decode(frame, head.body_pos, version)
                if self.silent and api_key != 18:
                    continue
                body, header_version = self._answer(api_key, version)
                writer.write(response_prefix(head.correlation_id, header_version, len(body))
                             + body)
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    def _answer(self, api_key: int, version: int) -> tuple[bytes, int]:
        if api_key == 18:
            keys = [ApiVersionsResponse.ApiVersion(api_key=k, min_version=low, max_version=high)
                    for k, (low, high) in sorted(self.advertised.items())]
            if version > self.api_versions_max:  # KIP-511: v0, error, own range
                return ApiVersionsResponse(error_code=Err.UNSUPPORTED_VERSION,
                                           api_keys=keys).to_bytes(0), 0
            return ApiVersionsResponse(api_keys=keys).to_bytes(version), 0
        assert api_key == 3
        response = MetadataResponse(brokers=[MetadataResponse.MetadataResponseBroker(
            node_id=5, host="127.0.0.1", port=self.port)], controller_id=5, cluster_id="fake")
        return response.to_bytes(version), response_header_version(api_key, version)


def test_api_versions_falls_back_to_the_range_an_older_broker_names() -> None:
    async def body() -> None:
        broker = FakeBroker(api_versions_max=2, advertised={18: (0, 2), 3: (0, 5)})
        await broker.start()
        try:
            client = await KafkaClient.connect(f"127.0.0.1:{broker.port}")
            try:
                assert client.brokers[5].port == broker.port
                assert client.cluster_id == "fake"
                assert await client.negotiated_version(3) == 5
                # no FindCoordinator in its ApiVersions: a clear UNSUPPORTED_VERSION
                with pytest.raises(KafkaResponseError) as info:
                    await client.find_coordinator("g")
                assert info.value.code == Err.UNSUPPORTED_VERSION
                assert "FindCoordinator" in str(info.value)
            finally:
                await client.close()
            # asked in our max (4), answered UNSUPPORTED_VERSION, asked again in 2
            assert broker.seen[:3] == [(18, 4), (18, 2), (3, 5)]
        finally:
            await broker.stop()
    run(body())


def test_a_silent_broker_times_out() -> None:
    async def body() -> None:
        broker = FakeBroker(api_versions_max=4, advertised={18: (0, 4), 3: (0, 12)},
                            silent=True)
        await broker.start()
        try:
            started = time.monotonic()
            with pytest.raises(KafkaTimeoutError):
                await KafkaClient.connect(f"127.0.0.1:{broker.port}", request_timeout_ms=200,
                                          retry_timeout_ms=300)
            assert time.monotonic() - started < 5
        finally:
            await broker.stop()
    run(body())
