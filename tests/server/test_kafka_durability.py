"""`kill -9` of `zoolog up` under produce load: what was acknowledged survives.

The whole `zoolog up` (coordination service, its client front and the broker, which dies
with its parent) is killed with SIGKILL while a producer with acks=all and idempotence
streams numbered records into three partitions and a consumer group commits as it reads.
After a restart on the same data directory every acknowledged record is there exactly once
and in order, the group resumes from its last commit, and a torn tail written into a
segment is truncated and reported.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic
from tests.server.up_process import Up

from zoolog.testing import wait_until

PARTITIONS = 3


def read_partition(bootstrap: str, topic: str, partition: int) -> list[bytes]:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "audit",
                            "enable.auto.commit": False, "log_level": 0})
    low, high = consumer.get_watermark_offsets(ck.TopicPartition(topic, partition), 20)
    consumer.assign([ck.TopicPartition(topic, partition, low)])
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(values) < high - low and time.monotonic() < deadline:
        for message in consumer.consume(10000, 0.1):
            assert message.error() is None, message.error()
            values.append(message.value())
    consumer.close()
    assert len(values) == high - low
    return values


def test_kill_9_under_acks_all_load_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    up = Up(tmp_path / "data")
    up.start()
    admin = AdminClient({"bootstrap.servers": up.bootstrap})
    admin.create_topics([NewTopic("orders", PARTITIONS, 1)])["orders"].result(30)

    acked: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    stop = threading.Event()

    def produce() -> None:
        producer = ck.Producer({"bootstrap.servers": up.bootstrap, "acks": "all",
                                "enable.idempotence": True, "linger.ms": 2,
                                "message.timeout.ms": 8000, "log_level": 0})

        def delivered(err: ck.KafkaError | None, msg: ck.Message) -> None:
            if err is None:
                acked[msg.partition()].append(int(msg.value()))

        n = 0
        while not stop.is_set():
            try:
                producer.produce("orders", str(n).encode(), partition=n % PARTITIONS,
                                 on_delivery=delivered)
                n += 1
            except BufferError:
                pass
            producer.poll(0.0005 if n % 50 else 0.005)
        producer.flush(2)  # the broker is gone: whatever did not get an ack stays unacked

    committed: dict[int, int] = {}

    def consume() -> None:
        consumer = ck.Consumer({"bootstrap.servers": up.bootstrap, "group.id": "billing",
                                "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                "log_level": 0})
        consumer.subscribe(["orders"])
        while not stop.is_set():
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            try:
                consumer.commit(message, asynchronous=False)
                committed[message.partition()] = message.offset() + 1
            except ck.KafkaException:
                return
        consumer.close()

    producer_thread = threading.Thread(target=produce, daemon=True)
    consumer_thread = threading.Thread(target=consume, daemon=True)
    producer_thread.start()
    consumer_thread.start()
    wait_until(lambda: sum(map(len, acked.values())) >= 3000 and len(committed) == PARTITIONS,
               60, "records acknowledged and committed under load")
    up.kill9()
    commits_at_kill = dict(committed)
    stop.set()
    producer_thread.join(30)
    # the consumer thread closes its consumer in the background (its group coordinator is
    # gone); commits it may still make after the restart only move the offsets forward

    # a torn write at the tail of one partition's active segment: half a batch header
    segment = sorted((up.data_dir / "kafka" / "orders-1").glob("*.log"))[-1]
    with segment.open("ab") as handle:
        handle.write(b"\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x10\x00\x00")

    up.start()
    try:
        assert any("torn log tails truncated" in line for line in up.output), up.output
        for partition in range(PARTITIONS):
            stored = [int(v) for v in read_partition(up.bootstrap, "orders", partition)]
            assert len(stored) == len(set(stored)), "a record is stored twice"
            assert stored == sorted(stored), "records out of order"
            missing = set(acked[partition]) - set(stored)
            assert not missing, f"acknowledged records lost: {sorted(missing)[:10]}"
        # the group resumes from its commits: offsets at least those acknowledged before
        consumer = ck.Consumer({"bootstrap.servers": up.bootstrap, "group.id": "billing",
                                "log_level": 0})
        offsets = consumer.committed([ck.TopicPartition("orders", p)
                                      for p in range(PARTITIONS)], 20)
        consumer.close()
        for tp in offsets:
            assert tp.offset >= commits_at_kill.get(tp.partition, 0)
    finally:
        up.stop()
