"""`kill -9` of `zoolog up` under produce load: what was acknowledged survives.

The whole `zoolog up` (coordination service, its client front and the broker, which dies
with its parent) is killed with SIGKILL while a producer with acks=all and idempotence
streams numbered records into three partitions and a consumer group commits as it reads.
After a restart on the same data directory every acknowledged record is there exactly once
and in order, the group resumes from its last commit, and a torn tail written into a
segment is truncated and reported.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic

from zoolog.testing import wait_until

PARTITIONS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Up:
    """A `zoolog up` process on fixed ports and a data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.zk_port = free_port()
        self.kafka_port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def start(self) -> None:
        self.output = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zoolog", "up", "--data-dir", str(self.data_dir), "--port",
             str(self.zk_port), "--kafka-port", str(self.kafka_port), "--log-level", "WARNING"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if "export ZOOKEEPER_CONNECT" in line:
                break
        else:
            raise AssertionError("zoolog up exited:\n" + "".join(self.output))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def kill9(self) -> None:
        assert self.proc is not None
        children = _descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        wait_until(lambda: all(_gone(pid) for pid in children), 15,
                   "the broker and the client front to die with zoolog up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{tid}/children").read_text().split():
            out.append(int(child))
            out.extend(_descendants(int(child)))
    return out


def _gone(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


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
