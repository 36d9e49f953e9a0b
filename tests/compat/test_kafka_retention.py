"""Retention and compaction seen by clients: old segments go by size and by time, a
compacted topic keeps the last record of every key and drops tombstones."""

from __future__ import annotations

import time

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic

from zoolog.testing import wait_until
from zoolog.testing.kafka_servers import KafkaServerThread


def create(server: KafkaServerThread, name: str, config: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(20)


def watermarks(server: KafkaServerThread, topic: str) -> tuple[int, int]:
    consumer = ck.Consumer({"bootstrap.servers": server.bootstrap, "group.id": "wm"})
    try:
        low, high = consumer.get_watermark_offsets(ck.TopicPartition(topic, 0), 10)
        return int(low), int(high)
    finally:
        consumer.close()


def read_all(server: KafkaServerThread, topic: str) -> list[ck.Message]:
    consumer = ck.Consumer({"bootstrap.servers": server.bootstrap, "group.id": "all",
                            "enable.auto.commit": False})
    low, high = consumer.get_watermark_offsets(ck.TopicPartition(topic, 0), 10)
    consumer.assign([ck.TopicPartition(topic, 0, low)])
    got: list[ck.Message] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for message in consumer.consume(1000, 0.2):
            assert message.error() is None
            got.append(message)
        if got and got[-1].offset() >= high - 1:
            break
    consumer.close()
    return got


def produce(server: KafkaServerThread, topic: str, records: list[tuple[bytes, bytes | None]]
            ) -> None:
    producer = ck.Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 0,
                            "batch.num.messages": 1})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
        producer.poll(0)
    assert producer.flush(20) == 0


def test_retention_by_size_deletes_old_segments(zoolog_kafka: KafkaServerThread) -> None:
    create(zoolog_kafka, "sized", {"segment.bytes": "2048", "retention.bytes": "4096"})
    produce(zoolog_kafka, "sized", [(None, b"x" * 300)] * 60)  # about 22 KB in 2 KB segments
    wait_until(lambda: watermarks(zoolog_kafka, "sized")[0] > 0, 15,
               "old segments to be deleted by retention.bytes")
    low, high = watermarks(zoolog_kafka, "sized")
    assert high == 60 and 0 < low < 60
    kept = read_all(zoolog_kafka, "sized")
    assert [m.offset() for m in kept] == list(range(low, 60))


def test_retention_by_time_deletes_old_segments(zoolog_kafka: KafkaServerThread) -> None:
    create(zoolog_kafka, "timed", {"segment.bytes": "1024", "retention.ms": "1000"})
    produce(zoolog_kafka, "timed", [(None, b"y" * 300)] * 20)
    wait_until(lambda: watermarks(zoolog_kafka, "timed")[0] > 0, 20,
               "segments older than retention.ms to be deleted")
    assert watermarks(zoolog_kafka, "timed")[1] == 20


def test_compaction_keeps_the_last_value_of_each_key(zoolog_kafka: KafkaServerThread) -> None:
    create(zoolog_kafka, "profiles", {"cleanup.policy": "compact", "segment.bytes": "1024",
                                      "min.cleanable.dirty.ratio": "0.01",
                                      "delete.retention.ms": "100",
                                      "segment.ms": "100"})
    records: list[tuple[bytes, bytes | None]] = []
    for round_ in range(10):
        records += [(f"user-{k}".encode(), f"v{round_}".encode()) for k in range(5)]
    records.append((b"user-4", None))  # a tombstone: user-4 is gone
    produce(zoolog_kafka, "profiles", records)

    def compacted() -> bool:
        got = read_all(zoolog_kafka, "profiles")
        latest = {m.key(): m.value() for m in got}
        return len(got) < len(records) and all(v == b"v9" for k, v in latest.items()
                                                if k != b"user-4")
    wait_until(compacted, 30, "the cleaner to compact the topic")
    # tombstones outlive the cleaning that first sees them by delete.retention.ms; a later
    # cleaning (which ongoing traffic on the topic triggers) removes them, as in Kafka
    writes = [0]

    def tombstone_gone() -> bool:
        writes[0] += 1
        produce(zoolog_kafka, "profiles", [(b"user-0", f"w{writes[0]}".encode())] * 10)
        got = read_all(zoolog_kafka, "profiles")
        return all(m.key() != b"user-4" for m in got)
    wait_until(tombstone_gone, 30, "the tombstone and what it deleted to go")
    got = read_all(zoolog_kafka, "profiles")
    latest = {m.key(): m.value() for m in got}
    assert latest == {b"user-0": f"w{writes[0]}".encode(), b"user-1": b"v9",
                      b"user-2": b"v9", b"user-3": b"v9"}
    offsets = [m.offset() for m in got]
    assert offsets == sorted(offsets)  # kept records keep their original offsets
