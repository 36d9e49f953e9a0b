"""Idempotent producers over a connection that breaks at the worst moment.

A TCP relay sits between the clients and the broker (the broker advertises the relay's
port, so every connection, bootstrap and metadata-discovered alike, goes through it). For
chosen Produce requests the relay forwards the request, lets the broker append the batch,
and then cuts the connection instead of relaying the response. The producer never hears
that its batch landed and sends it again with the same producer id, epoch and sequence
numbers; the broker must recognise the duplicate, answer it with the original offset and
not append it twice. Reading the log back must show every record once, in the order
produced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiokafka
import confluent_kafka as ck
import kafka
import pytest
from tests.compat.kafka_helpers import (
    ProduceDroppingProxy,
    by_partition,
    create_topic,
    read_log,
)

from zoolog.testing.kafka_servers import KafkaServerThread

DROPS = (2, 5, 9, 14)
"""Produce requests (counted over all connections) whose responses the relay withholds."""


@pytest.fixture
def relayed(tmp_path: Path) -> Iterator[tuple[KafkaServerThread, ProduceDroppingProxy, str]]:
    """A broker behind a ProduceDroppingProxy; yields (server, proxy, bootstrap through
    the proxy)."""
    proxy = ProduceDroppingProxy(DROPS)
    server = KafkaServerThread(tmp_path / "kafka", properties={
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"})
    server.start()
    proxy.start(server.kafka_port)
    try:
        yield server, proxy, f"127.0.0.1:{proxy.port}"
    finally:
        server.stop()
        proxy.close()


def values(n: int, prefix: str) -> list[bytes]:
    return [f"{prefix}-{i:05d}".encode() for i in range(n)]


def check_exactly_once_in_order(bootstrap: str, topic: str, sent: dict[int, list[bytes]],
                                acked: dict[bytes, tuple[int, int]],
                                proxy: ProduceDroppingProxy) -> None:
    """The relay really cut connections after appends and the producer really resent
    batches unchanged; yet each partition's log holds exactly what was sent to it, in
    order, and every acknowledgement names the offset the record has in the log."""
    assert proxy.dropped == len(DROPS), f"only {proxy.dropped} responses withheld"
    resent = proxy.resent()
    assert resent, "no batch was sent twice: the test did not force a retry"
    log = by_partition(read_log(bootstrap, topic))
    assert {p: [r.value for r in recs] for p, recs in log.items()} == sent
    in_log = {r.value: (r.partition, r.offset) for recs in log.values() for r in recs}
    assert {v: acked[v] for v in in_log} == in_log


def test_confluent_idempotent_producer_resends_are_appended_once(relayed: tuple[
        KafkaServerThread, ProduceDroppingProxy, str]) -> None:
    """librdkafka (enable.idempotence=true, 5 requests in flight, small batches) over a
    relay that loses four Produce responses."""
    _, proxy, bootstrap = relayed
    create_topic(bootstrap, "payments", 2)
    producer = ck.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                            "linger.ms": 2, "batch.num.messages": 40,
                            "max.in.flight.requests.per.connection": 5,
                            "retry.backoff.ms": 20, "reconnect.backoff.ms": 10})
    sent: dict[int, list[bytes]] = {0: [], 1: []}
    acked: dict[bytes, tuple[int, int]] = {}
    errors: list[ck.KafkaError] = []

    def report(err: ck.KafkaError | None, msg: ck.Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            acked[msg.value()] = (msg.partition(), msg.offset())

    for i, value in enumerate(values(3000, "payment")):
        partition = i % 2
        sent[partition].append(value)
        producer.produce("payments", value=value, partition=partition, on_delivery=report)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:5]
    assert len(acked) == 3000
    check_exactly_once_in_order(bootstrap, "payments", sent, acked, proxy)


def test_kafka_python_idempotent_producer_resends_are_appended_once(relayed: tuple[
        KafkaServerThread, ProduceDroppingProxy, str]) -> None:
    """kafka-python, idempotent by default (acks=all, 5 in flight)."""
    _, proxy, bootstrap = relayed
    create_topic(bootstrap, "payments", 2)
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2,
                                   batch_size=2048, retry_backoff_ms=20)
    sent: dict[int, list[bytes]] = {0: [], 1: []}
    futures = []
    for i, value in enumerate(values(3000, "payment")):
        partition = i % 2
        sent[partition].append(value)
        futures.append((value, producer.send("payments", value=value, partition=partition)))
    producer.flush(60)
    acked = {}
    for value, future in futures:
        metadata = future.get(10)
        acked[value] = (metadata.partition, metadata.offset)
    producer.close()
    check_exactly_once_in_order(bootstrap, "payments", sent, acked, proxy)


def test_aiokafka_idempotent_producer_resends_are_appended_once(relayed: tuple[
        KafkaServerThread, ProduceDroppingProxy, str]) -> None:
    """aiokafka with enable_idempotence=True."""
    _, proxy, bootstrap = relayed
    create_topic(bootstrap, "payments", 2)
    sent: dict[int, list[bytes]] = {0: [], 1: []}
    acked: dict[bytes, tuple[int, int]] = {}

    async def run() -> None:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap,
                                             enable_idempotence=True, linger_ms=2,
                                             max_batch_size=2048, retry_backoff_ms=20)
        await producer.start()
        try:
            pending = []
            for i, value in enumerate(values(3000, "payment")):
                partition = i % 2
                sent[partition].append(value)
                pending.append((value, await producer.send("payments", value=value,
                                                           partition=partition)))
            for value, future in pending:
                metadata = await asyncio.wait_for(future, 60)
                acked[value] = (metadata.partition, metadata.offset)
        finally:
            await producer.stop()

    asyncio.run(run())
    check_exactly_once_in_order(bootstrap, "payments", sent, acked, proxy)


@pytest.mark.parametrize("how", ["restart", "crash"])
def test_resend_after_the_broker_restarted_is_still_recognised(tmp_path: Path,
                                                               how: str) -> None:
    """The worst moment made worse: the broker appends a batch and, before the producer
    hears so, restarts (cleanly, or by crashing and starting again). The producer resends
    to the restarted broker, which must still know the producer's last sequence numbers
    (from its producer-state snapshot or by rebuilding it from the log) and not append
    the batch a second time."""
    server: KafkaServerThread | None = None

    def bounce() -> None:
        assert server is not None
        if how == "restart":
            server.restart()
        else:
            server.crash()
            server.start()

    proxy = ProduceDroppingProxy((6,), on_drop=bounce)
    server = KafkaServerThread(tmp_path / "kafka", properties={
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"})
    server.start()
    proxy.start(server.kafka_port)
    bootstrap = f"127.0.0.1:{proxy.port}"
    try:
        create_topic(bootstrap, "payments", 1)
        producer = ck.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                "linger.ms": 2, "batch.num.messages": 25,
                                "retry.backoff.ms": 50, "reconnect.backoff.ms": 20})
        sent = values(500, "payment")
        acked: dict[bytes, tuple[int, int]] = {}
        errors: list[ck.KafkaError] = []
        for value in sent:
            producer.produce("payments", value=value, partition=0, on_delivery=lambda e, m: (
                errors.append(e) if e is not None else
                acked.__setitem__(m.value(), (m.partition(), m.offset()))))
            producer.poll(0)
        assert producer.flush(60) == 0
        assert not errors, errors[:5]
        assert proxy.dropped == 1
        assert proxy.resent(), "no batch was sent twice: the test did not force a retry"
        log = read_log(bootstrap, "payments")
        assert [r.value for r in log] == sent
        assert {r.value: (r.partition, r.offset) for r in log} == acked
    finally:
        server.stop()
        proxy.close()
