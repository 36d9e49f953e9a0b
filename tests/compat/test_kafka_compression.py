"""Compression across clients: each of confluent-kafka, kafka-python, aiokafka and kcat
produces with each codec (gzip, snappy, lz4, zstd) into one topic, and every one of them
reads back everything all of them wrote. A raw Fetch checks that the batches were really
stored compressed with that codec. A topic with compression.type=zstd recompresses what a
producer sent as lz4, and the records still read back intact from every client."""

from __future__ import annotations

import asyncio
import subprocess
import time

import aiokafka
import confluent_kafka as ck
import kafka
import pytest
from tests.compat.kafka_helpers import CODEC_IDS, create_topic, fetch_batches, read_log

from zoolog.testing import wait_until
from zoolog.testing.kafka_servers import KafkaServerThread

CODECS = ["gzip", "snappy", "lz4", "zstd"]
PRODUCERS = ["confluent", "kafka-python", "aiokafka", "kcat"]
PER_PRODUCER = 5


def payload(producer: str, codec: str, i: int) -> bytes:
    """A record value that compresses well (so every client really compresses it)."""
    return f"{producer}/{codec}/{i:03d} ".encode() + b"parcel-contents " * 16


def produce_with(client: str, bootstrap: str, topic: str, codec: str,
                 values: list[bytes]) -> None:
    if client == "confluent":
        producer = ck.Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                                "linger.ms": 20})
        for value in values:
            producer.produce(topic, value=value, partition=0)
        assert producer.flush(30) == 0
    elif client == "kafka-python":
        kp = kafka.KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec,
                                 linger_ms=20)
        for value in values:
            kp.send(topic, value=value, partition=0)
        kp.flush(30)
        kp.close()
    elif client == "aiokafka":
        async def run() -> None:
            ak = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap,
                                           compression_type=codec, linger_ms=20)
            await ak.start()
            try:
                batch = [await ak.send(topic, value=v, partition=0) for v in values]
                await asyncio.wait_for(asyncio.gather(*batch), 30)
            finally:
                await ak.stop()
        asyncio.run(run())
    else:
        done = subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", topic, "-p", "0",
                               "-z", codec],
                              input=b"".join(v + b"\n" for v in values), capture_output=True,
                              timeout=30)
        assert done.returncode == 0, done.stderr


def consume_with(client: str, bootstrap: str, topic: str, count: int) -> list[bytes]:
    """Every value in partition 0 of `topic`, in offset order, read by `client` (no
    group: assign and start from the beginning)."""
    if client == "confluent":
        return [r.value for r in read_log(bootstrap, topic) if r.value is not None]
    if client == "kafka-python":
        consumer = kafka.KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        tp = kafka.TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got: list[bytes] = []
        try:
            def enough() -> bool:
                for records in consumer.poll(timeout_ms=200).values():
                    got.extend(r.value for r in records)
                return len(got) >= count
            wait_until(enough, 20, f"kafka-python to read {count} records")
        finally:
            consumer.close()
        return got
    if client == "aiokafka":
        async def run() -> list[bytes]:
            consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap,
                                                 enable_auto_commit=False)
            await consumer.start()
            tp = aiokafka.TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            got: list[bytes] = []
            try:
                async def drain() -> None:
                    while len(got) < count:
                        for records in (await consumer.getmany(timeout_ms=200)).values():
                            got.extend(r.value for r in records)
                await asyncio.wait_for(drain(), 20)
            finally:
                await consumer.stop()
            return got
        return asyncio.run(run())
    done = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-p", "0", "-e",
                           "-o", "beginning", "-f", "%s\n"], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("codec", CODECS)
def test_every_client_reads_every_clients_compressed_batches(
        zoolog_kafka: KafkaServerThread, codec: str) -> None:
    bootstrap = zoolog_kafka.bootstrap
    topic = f"parcels-{codec}"
    create_topic(bootstrap, topic, 1)
    expected: list[bytes] = []
    for producer in PRODUCERS:
        values = [payload(producer, codec, i) for i in range(PER_PRODUCER)]
        produce_with(producer, bootstrap, topic, codec, values)
        expected += values

    batches = fetch_batches(zoolog_kafka.kafka_port, topic)
    assert sum(b.record_count for b in batches) == len(expected)
    assert {b.codec for b in batches} == {CODEC_IDS[codec]}, batches

    for consumer in PRODUCERS:
        assert consume_with(consumer, bootstrap, topic, len(expected)) == expected, consumer


def test_topic_compression_type_recompresses(zoolog_kafka: KafkaServerThread) -> None:
    """compression.type=zstd on the topic: a producer's lz4 batches are stored as zstd;
    with the default compression.type=producer the same batches stay lz4. Both read
    back intact from every client."""
    bootstrap = zoolog_kafka.bootstrap
    create_topic(bootstrap, "stored-zstd", 1, {"compression.type": "zstd"})
    create_topic(bootstrap, "as-produced", 1)
    values = [payload("confluent", "lz4", i) for i in range(20)]
    for topic in ("stored-zstd", "as-produced"):
        produce_with("confluent", bootstrap, topic, "lz4", values)
        produce_with("kafka-python", bootstrap, topic, "lz4", values)

    assert {b.codec for b in fetch_batches(zoolog_kafka.kafka_port, "stored-zstd")} == {
        CODEC_IDS["zstd"]}
    assert {b.codec for b in fetch_batches(zoolog_kafka.kafka_port, "as-produced")} == {
        CODEC_IDS["lz4"]}
    for topic in ("stored-zstd", "as-produced"):
        for consumer in PRODUCERS:
            assert consume_with(consumer, bootstrap, topic, 40) == values + values, (
                topic, consumer)


def test_uncompressed_producer_into_zstd_topic_and_back(zoolog_kafka: KafkaServerThread) -> None:
    """Uncompressed records into a compression.type=zstd topic are compressed by the
    broker, offsets and headers intact."""
    bootstrap = zoolog_kafka.bootstrap
    create_topic(bootstrap, "shrunk", 1, {"compression.type": "zstd"})
    producer = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(30):
        producer.produce("shrunk", key=b"k%d" % i, value=payload("plain", "none", i),
                         headers=[("n", str(i).encode())], partition=0,
                         timestamp=1_700_000_000_000 + i)
    assert producer.flush(30) == 0
    assert {b.codec for b in fetch_batches(zoolog_kafka.kafka_port, "shrunk")} == {
        CODEC_IDS["zstd"]}
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"g{time.time_ns()}",
                            "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([ck.TopicPartition("shrunk", 0, ck.OFFSET_BEGINNING)])
    got: list[ck.Message] = []
    try:
        def thirty() -> bool:
            got.extend(consumer.consume(100, 0.2))
            return len(got) >= 30
        wait_until(thirty, 20, "30 records")
    finally:
        consumer.close()
    assert [m.offset() for m in got] == list(range(30))
    assert [m.key() for m in got] == [b"k%d" % i for i in range(30)]
    assert [dict(m.headers())["n"] for m in got] == [str(i).encode() for i in range(30)]
    assert [m.timestamp()[1] for m in got] == [1_700_000_000_000 + i for i in range(30)]
