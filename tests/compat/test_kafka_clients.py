"""The broker as users' Kafka clients see it: confluent-kafka (librdkafka 2.16), kafka-python,
aiokafka and kcat (librdkafka 2.0) over real sockets, unchanged."""

from __future__ import annotations

import asyncio
import subprocess
import time

import aiokafka
import confluent_kafka as ck
import kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from zoolog.testing.kafka_servers import KafkaServerThread

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def create_topic(server: KafkaServerThread, name: str, partitions: int = 1,
                 config: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    futures[name].result(20)


def consume_all(bootstrap: str, topic: str, count: int, group: str | None = None,
                timeout_s: float = 30, **extra: object) -> list[ck.Message]:
    config: dict[str, object] = {"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest",
                                 "group.id": group or f"reader-{time.monotonic_ns()}",
                                 "enable.auto.commit": False}
    config.update(extra)
    consumer = ck.Consumer(config)
    consumer.subscribe([topic])
    got: list[ck.Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            got.append(message)
        if group is not None:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_confluent_produce_each_acks_and_codec_then_consume(zoolog_kafka: KafkaServerThread,
                                                           acks: str, codec: str) -> None:
    topic = f"orders-{acks}-{codec}"
    create_topic(zoolog_kafka, topic, 2)
    producer = ck.Producer({"bootstrap.servers": zoolog_kafka.bootstrap, "acks": acks,
                            "compression.type": codec, "linger.ms": 5})
    delivered: list[ck.Message] = []
    for i in range(200):
        producer.produce(topic, key=f"customer-{i % 7}".encode(), value=f"order {i}".encode(),
                         headers=[("source", b"web"), ("n", str(i).encode())],
                         on_delivery=lambda err, msg: delivered.append(msg) if err is None
                         else pytest.fail(str(err)))
    assert producer.flush(30) == 0
    assert len(delivered) == 200
    got = consume_all(zoolog_kafka.bootstrap, topic, 200)
    assert sorted(m.value() for m in got) == sorted(f"order {i}".encode() for i in range(200))
    by_key: dict[bytes, list[int]] = {}
    for message in got:
        headers = dict(message.headers() or [])
        assert headers["source"] == b"web"
        by_key.setdefault(message.key(), []).append(int(headers["n"]))
        assert message.key() == f"customer-{int(headers['n']) % 7}".encode()
    for numbers in by_key.values():  # one key -> one partition -> produced order
        assert numbers == sorted(numbers)


def test_kafka_python_produce_consume_and_admin(zoolog_kafka: KafkaServerThread) -> None:
    admin = kafka.KafkaAdminClient(bootstrap_servers=zoolog_kafka.bootstrap)
    try:
        admin.create_topics([kafka.admin.NewTopic("kp", 3, 1)])
        assert "kp" in admin.list_topics()
        for codec in ("gzip", "snappy", "lz4", "zstd", None):
            producer = kafka.KafkaProducer(bootstrap_servers=zoolog_kafka.bootstrap, acks="all",
                                           compression_type=codec)
            for i in range(10):
                producer.send("kp", key=b"k%d" % (i % 3), value=f"{codec}-{i}".encode())
            producer.flush()
            producer.close()
        consumer = kafka.KafkaConsumer("kp", bootstrap_servers=zoolog_kafka.bootstrap,
                                       group_id="kp-group", auto_offset_reset="earliest",
                                       consumer_timeout_ms=10_000, enable_auto_commit=False)
        values = []
        for message in consumer:
            values.append(message.value)
            if len(values) == 50:
                break
        consumer.commit()
        consumer.close()
        assert sorted(values) == sorted(f"{c}-{i}".encode() for c in
                                        ("gzip", "snappy", "lz4", "zstd", None) for i in range(10))
        offsets = admin.list_group_offsets("kp-group")["kp-group"]
        assert sum(o.offset for o in offsets.values()) == 50
        described = admin.describe_groups(["kp-group"])["kp-group"]
        assert described["group_state"] == "Empty"
        admin.delete_topics(["kp"])
        assert "kp" not in admin.list_topics()
    finally:
        admin.close()


def test_aiokafka_produce_and_group_consume(zoolog_kafka: KafkaServerThread) -> None:
    async def run() -> list[bytes]:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=zoolog_kafka.bootstrap,
                                             compression_type="lz4", acks=1)
        await producer.start()
        try:
            for i in range(30):
                await producer.send_and_wait("ak", f"ak-{i}".encode(), key=b"x")
        finally:
            await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer("ak", bootstrap_servers=zoolog_kafka.bootstrap,
                                             group_id="ak-group", auto_offset_reset="earliest")
        await consumer.start()
        got: list[bytes] = []
        try:
            async def take() -> None:
                async for message in consumer:
                    got.append(message.value)
                    if len(got) == 30:
                        return
            await asyncio.wait_for(take(), 30)
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == [f"ak-{i}".encode() for i in range(30)]


def test_kcat_metadata_produce_consume(zoolog_kafka: KafkaServerThread) -> None:
    bootstrap = zoolog_kafka.bootstrap
    produced = subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", "kc", "-z", "snappy",
                               "-K", ":"], input="a:1\nb:2\nc:3\n", capture_output=True,
                              text=True, timeout=30)
    assert produced.returncode == 0, produced.stderr
    listed = subprocess.run(["kcat", "-b", bootstrap, "-L", "-t", "kc"], capture_output=True,
                            text=True, timeout=30)
    assert 'topic "kc" with 1 partitions' in listed.stdout, listed.stdout + listed.stderr
    consumed = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", "kc", "-e", "-o",
                               "beginning", "-f", "%k=%s@%o\n"], capture_output=True, text=True,
                              timeout=30)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout == "a=1@0\nb=2@1\nc=3@2\n"


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_kcat_produces_with_each_acks(zoolog_kafka: KafkaServerThread, acks: str) -> None:
    bootstrap = zoolog_kafka.bootstrap
    topic = f"kcat-acks-{acks}"
    lines = "".join(f"k{i % 3}:v{i}\n" for i in range(50))
    produced = subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", topic, "-K", ":",
                               "-X", f"acks={acks}", "-H", "origin=kcat"], input=lines,
                              capture_output=True, text=True, timeout=30)
    assert produced.returncode == 0, produced.stderr
    got = consume_all(bootstrap, topic, 50)
    assert sorted(m.value() for m in got) == sorted(f"v{i}".encode() for i in range(50))
    assert all(dict(m.headers() or [])["origin"] == b"kcat" for m in got)
