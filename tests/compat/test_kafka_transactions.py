"""Kafka transactions through real clients over real sockets: confluent-kafka (librdkafka),
kafka-python and aiokafka transactional producers commit and abort across two topics and
several partitions; read_committed consumers see only committed records (markers skipped,
their position ends at the high watermark), read_uncommitted ones see everything; a
consume-transform-produce loop with send_offsets_to_transaction survives a crash and a
takeover (the old instance fenced) with each input in the output exactly once; an open
transaction is aborted at its timeout and its producer fenced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiokafka
import confluent_kafka as ck
import kafka
import kafka.errors
import pytest
from tests.compat.kafka_helpers import FAST_GROUP, Rec, create_topic, from_ck

from zoolog.testing import wait_until
from zoolog.testing.kafka_servers import KafkaServerThread

FENCED = {ck.KafkaError._FENCED, ck.KafkaError.INVALID_PRODUCER_EPOCH,
          ck.KafkaError.PRODUCER_FENCED}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KafkaServerThread]:
    """A broker whose coordinator looks for timed-out transactions every 200 ms."""
    with KafkaServerThread(tmp_path / "kafka", properties={
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"}) as s:
        yield s


def read_all(bootstrap: str, topics: list[str], isolation: str,
             timeout_s: float = 30) -> list[Rec]:
    """Every record of `topics` readable at `isolation`, read with assign() until each
    partition's position reaches its high watermark (librdkafka moves past markers)."""
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                            "enable.auto.commit": False, "auto.offset.reset": "earliest",
                            "isolation.level": isolation})
    try:
        tps = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            tps += [ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in meta.partitions]
        ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(
            ck.TopicPartition(tp.topic, tp.partition), timeout=10, cached=False)[1]
            for tp in tps}
        ends = {tp: end for tp, end in ends.items() if end > 0}
        tps = [tp for tp in tps if (tp.topic, tp.partition) in ends]
        if not tps:
            return []
        consumer.assign(tps)
        got: list[Rec] = []

        def caught_up() -> bool:
            for message in consumer.consume(500, 0.2):
                assert message.error() is None, message.error()
                got.append(from_ck(message))
            positions = consumer.position([ck.TopicPartition(t, p) for t, p in ends])
            return all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in positions)

        wait_until(caught_up, timeout_s, f"reading {topics} to {ends} at {isolation}")
        return got
    finally:
        consumer.close()


def values_of(records: list[Rec]) -> set[bytes]:
    return {r.value for r in records if r.value is not None}


def watermarks(bootstrap: str, topic: str, partitions: int, isolation: str,
               ) -> list[tuple[int, int]]:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "wm",
                            "isolation.level": isolation})
    try:
        return [consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10,
                                               cached=False) for p in range(partitions)]
    finally:
        consumer.close()


# --- confluent-kafka ------------------------------------------------------------------------


def test_confluent_commit_and_abort_across_topics(server: KafkaServerThread) -> None:
    bootstrap = server.bootstrap
    create_topic(bootstrap, "orders", 3)
    create_topic(bootstrap, "audit", 2)
    producer = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": "ck-app",
                            "linger.ms": 5})
    producer.init_transactions(20)
    committed: set[bytes] = set()
    aborted: set[bytes] = set()
    for round_ in range(4):
        producer.begin_transaction()
        batch = {f"r{round_}-{i}".encode() for i in range(12)}
        for i, value in enumerate(sorted(batch)):
            producer.produce("orders", value=value, partition=i % 3)
            producer.produce("audit", value=b"audit-" + value, partition=i % 2)
        if round_ % 2:
            producer.flush(20)  # the records reach the log before the abort
            producer.abort_transaction(20)
            aborted |= batch | {b"audit-" + v for v in batch}
        else:
            producer.commit_transaction(20)
            committed |= batch | {b"audit-" + v for v in batch}
    # one transaction left open: invisible to read_committed, visible to read_uncommitted
    producer.begin_transaction()
    producer.produce("orders", value=b"open", partition=0)
    producer.flush(20)
    uncommitted = values_of(read_all(bootstrap, ["orders", "audit"], "read_uncommitted"))
    assert uncommitted == committed | aborted | {b"open"}
    lso = watermarks(bootstrap, "orders", 3, "read_committed")
    hw = watermarks(bootstrap, "orders", 3, "read_uncommitted")
    assert lso[0][1] < hw[0][1] and lso[1:] == hw[1:]
    producer.commit_transaction(20)
    seen = read_all(bootstrap, ["orders", "audit"], "read_committed")
    assert values_of(seen) == committed | {b"open"}
    assert len(seen) == len(committed) + 1  # each once, markers never delivered
    assert watermarks(bootstrap, "orders", 3, "read_committed") == \
        watermarks(bootstrap, "orders", 3, "read_uncommitted")


def test_confluent_consume_transform_produce_with_a_crash_and_takeover(
        server: KafkaServerThread) -> None:
    """Exactly-once: every input in the output once, the group's offset at the input's end,
    the crashed instance's open transaction aborted and the instance fenced."""
    bootstrap = server.bootstrap
    create_topic(bootstrap, "input", 3)
    create_topic(bootstrap, "output", 2)
    inputs = [f"in-{i:04d}".encode() for i in range(300)]
    feeder = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, value in enumerate(inputs):
        feeder.produce("input", value=value, partition=i % 3)
    assert feeder.flush(20) == 0

    def instance() -> tuple[ck.Consumer, ck.Producer]:
        consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "eos",
                                "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                "isolation.level": "read_committed", **FAST_GROUP})
        producer = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                                "transactional.id": "eos-worker"})
        producer.init_transactions(30)
        consumer.subscribe(["input"])
        return consumer, producer

    def process(consumer: ck.Consumer, producer: ck.Producer, limit: int,
                commit: bool) -> int:
        """One transaction over up to `limit` inputs; returns how many it took."""
        batch: list[ck.Message] = []
        deadline = time.monotonic() + 20
        while len(batch) < limit and time.monotonic() < deadline:
            for message in consumer.consume(limit - len(batch), 0.5):
                assert message.error() is None, message.error()
                batch.append(message)
            if batch and len(batch) < limit and not consumer.consume(0, 0):
                break
        if not batch:
            return 0
        producer.begin_transaction()
        for message in batch:
            producer.produce("output", value=b"out-" + message.value())
        producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                             consumer.consumer_group_metadata(), 20)
        if commit:
            producer.commit_transaction(20)
        else:
            producer.flush(20)  # the crash: output written, the transaction never ended
        return len(batch)

    first_consumer, first = instance()
    done = 0
    while done < 120:
        done += process(first_consumer, first, 40, commit=True)
    assert process(first_consumer, first, 40, commit=False) > 0
    first_consumer.close()  # the instance's consumer leaves; its producer is the zombie

    second_consumer, second = instance()  # fences `first`, aborts its open transaction
    while process(second_consumer, second, 50, commit=True):
        pass
    with pytest.raises(ck.KafkaException) as caught:  # the zombie cannot commit
        first.commit_transaction(10)
    assert caught.value.args[0].code() in FENCED or caught.value.args[0].fatal()
    second_consumer.close()

    output = read_all(bootstrap, ["output"], "read_committed")
    assert sorted(r.value for r in output) == sorted(b"out-" + v for v in inputs)
    check = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "eos"})
    committed = check.committed([ck.TopicPartition("input", p) for p in range(3)], timeout=10)
    ends = [check.get_watermark_offsets(ck.TopicPartition("input", p), timeout=10)[1]
            for p in range(3)]
    check.close()
    assert [tp.offset for tp in committed] == ends == [100, 100, 100]


def test_an_open_transaction_is_aborted_at_its_timeout_and_its_producer_fenced(
        server: KafkaServerThread) -> None:
    bootstrap = server.bootstrap
    create_topic(bootstrap, "slow", 1)
    producer = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": "slow-app",
                            "transaction.timeout.ms": 1500, "linger.ms": 1})
    producer.init_transactions(20)
    producer.begin_transaction()
    producer.produce("slow", value=b"never")
    producer.flush(20)
    wait_until(lambda: watermarks(bootstrap, "slow", 1, "read_committed")[0][1] == 2, 15,
               "the coordinator to abort the timed-out transaction (LSO past its marker)")
    assert read_all(bootstrap, ["slow"], "read_committed") == []
    with pytest.raises(ck.KafkaException) as caught:
        producer.commit_transaction(10)
    error = caught.value.args[0]
    assert error.code() in FENCED or error.txn_requires_abort() or error.fatal(), error


def test_a_fenced_producers_late_write_is_refused(server: KafkaServerThread) -> None:
    bootstrap = server.bootstrap
    create_topic(bootstrap, "fence", 2)
    old = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": "fence-app",
                       "linger.ms": 1})
    old.init_transactions(20)
    old.begin_transaction()
    old.produce("fence", value=b"before", partition=0)
    old.flush(20)
    new = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": "fence-app"})
    new.init_transactions(20)  # bumps the epoch and aborts `old`'s transaction
    # partition 0 is in the old transaction already: the write goes straight to Produce
    # with the old epoch -> INVALID_PRODUCER_EPOCH, which librdkafka treats as fatal
    old.produce("fence", value=b"zombie", partition=0)
    with pytest.raises(ck.KafkaException) as caught:
        old.flush(10)
        old.commit_transaction(10)
    error = caught.value.args[0]
    assert error.fatal() and error.code() in FENCED, error
    assert values_of(read_all(bootstrap, ["fence"], "read_committed")) == set()
    assert b"zombie" not in values_of(read_all(bootstrap, ["fence"], "read_uncommitted"))
    new.begin_transaction()
    new.produce("fence", value=b"after", partition=1)
    new.commit_transaction(20)
    assert values_of(read_all(bootstrap, ["fence"], "read_committed")) == {b"after"}


# --- kafka-python ---------------------------------------------------------------------------


def test_kafka_python_commit_abort_and_offsets(server: KafkaServerThread) -> None:
    bootstrap = server.bootstrap
    create_topic(bootstrap, "kp-in", 2)
    create_topic(bootstrap, "kp-out", 3)
    feeder = ck.Producer({"bootstrap.servers": bootstrap})
    for i in range(20):
        feeder.produce("kp-in", value=b"kp-%d" % i, partition=i % 2)
    assert feeder.flush(20) == 0
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, transactional_id="kp-app",
                                   enable_idempotence=True)
    producer.init_transactions()
    producer.begin_transaction()
    for i in range(9):
        producer.send("kp-out", value=b"kp-commit-%d" % i, partition=i % 3)
    offsets = {kafka.TopicPartition("kp-in", p): kafka.OffsetAndMetadata(10, "", -1)
               for p in range(2)}
    producer.send_offsets_to_transaction(offsets, "kp-group")
    producer.commit_transaction()
    producer.begin_transaction()
    for i in range(6):
        producer.send("kp-out", value=b"kp-abort-%d" % i, partition=i % 3)
    producer.send_offsets_to_transaction(
        {kafka.TopicPartition("kp-in", p): kafka.OffsetAndMetadata(20, "", -1)
         for p in range(2)}, "kp-group")
    producer.flush()
    producer.abort_transaction()
    producer.close()
    assert values_of(read_all(bootstrap, ["kp-out"], "read_committed")) == {
        b"kp-commit-%d" % i for i in range(9)}
    assert len(values_of(read_all(bootstrap, ["kp-out"], "read_uncommitted"))) == 15
    check = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "kp-group"})
    committed = check.committed([ck.TopicPartition("kp-in", p) for p in range(2)], timeout=10)
    check.close()
    assert [tp.offset for tp in committed] == [10, 10]  # the aborted offsets were dropped
    consumer = kafka.KafkaConsumer("kp-out", bootstrap_servers=bootstrap,
                                   isolation_level="read_committed",
                                   auto_offset_reset="earliest", consumer_timeout_ms=3000)
    assert {m.value for m in consumer} == {b"kp-commit-%d" % i for i in range(9)}
    consumer.close()


def test_kafka_python_zombie_is_fenced(server: KafkaServerThread) -> None:
    bootstrap = server.bootstrap
    create_topic(bootstrap, "kp-fence", 1)
    old = kafka.KafkaProducer(bootstrap_servers=bootstrap, transactional_id="kp-fence")
    old.init_transactions()
    old.begin_transaction()
    old.send("kp-fence", value=b"old").get(10)
    new = kafka.KafkaProducer(bootstrap_servers=bootstrap, transactional_id="kp-fence")
    new.init_transactions()
    with pytest.raises(kafka.errors.KafkaError) as caught:
        old.commit_transaction()
    assert isinstance(caught.value, (kafka.errors.ProducerFencedError,
                                     kafka.errors.InvalidProducerEpochError)), caught.value
    new.begin_transaction()
    new.send("kp-fence", value=b"new").get(10)
    new.commit_transaction()
    new.close()
    old.close(timeout=1)
    assert values_of(read_all(bootstrap, ["kp-fence"], "read_committed")) == {b"new"}


# --- aiokafka -------------------------------------------------------------------------------


def test_aiokafka_transactions(server: KafkaServerThread) -> None:
    bootstrap = server.bootstrap
    create_topic(bootstrap, "aio-out", 2)
    create_topic(bootstrap, "aio-in", 1)

    async def run() -> list[bytes]:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap,
                                             transactional_id="aio-app")
        await producer.start()
        try:
            async with producer.transaction():
                for i in range(8):
                    await producer.send("aio-out", value=b"aio-commit-%d" % i,
                                        partition=i % 2)
                await producer.send_offsets_to_transaction(
                    {aiokafka.TopicPartition("aio-in", 0): 5}, "aio-group")
            await producer.begin_transaction()
            for i in range(4):
                await producer.send_and_wait("aio-out", value=b"aio-abort-%d" % i,
                                             partition=i % 2)
            await producer.abort_transaction()
        finally:
            await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer(
            "aio-out", bootstrap_servers=bootstrap, isolation_level="read_committed",
            auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        try:
            got: list[bytes] = []
            deadline = time.monotonic() + 15
            while len(got) < 8 and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                got += [m.value for ms in batches.values() for m in ms]
            return got
        finally:
            await consumer.stop()

    got = asyncio.run(run())
    assert sorted(got) == sorted(b"aio-commit-%d" % i for i in range(8))
    assert len(values_of(read_all(bootstrap, ["aio-out"], "read_uncommitted"))) == 12
    check = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "aio-group"})
    committed = check.committed([ck.TopicPartition("aio-in", 0)], timeout=10)
    check.close()
    assert committed[0].offset == 5
