"""`KafkaClient`'s transaction admin against the zoolog broker over real sockets, with
confluent-kafka transactional producers holding the transactions: coordinators found per
key type, list filters and their version limits, describe in the order asked with per-id
errors, describe_producers, fencing (retried through CONCURRENT_TRANSACTIONS until the abort
completed) and ABORT markers for a hanging transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import confluent_kafka as ck
import pytest

from zoolog.client.kafka import (
    KEY_TYPE_GROUP,
    KEY_TYPE_TRANSACTION,
    LATEST,
    READ_COMMITTED,
    KafkaClient,
    KafkaResponseError,
    ListedTransaction,
    TopicPartition,
)
from zoolog.protocol.kafka.errors import Err
from zoolog.testing.kafka_servers import KafkaServerThread


def with_client(server: KafkaServerThread,
                body: Callable[[KafkaClient], Awaitable[Any]], **options: Any) -> Any:
    async def go() -> Any:
        client = await KafkaClient.connect(server.bootstrap, **options)
        try:
            return await body(client)
        finally:
            await client.close()
    return asyncio.run(asyncio.wait_for(go(), 60))


def open_transaction(server: KafkaServerThread, tid: str,
                     records: list[tuple[str, int]]) -> ck.Producer:
    producer = ck.Producer({"bootstrap.servers": server.bootstrap, "transactional.id": tid,
                            "linger.ms": 1})
    producer.init_transactions(20)
    producer.begin_transaction()
    for i, (topic, partition) in enumerate(records):
        producer.produce(topic, value=f"{tid}-{i}".encode(), partition=partition)
    assert producer.flush(20) == 0
    return producer


def test_coordinators_are_found_per_key_type(zoolog_kafka: KafkaServerThread) -> None:
    async def body(client: KafkaClient) -> None:
        group = await client.find_coordinator("x")
        txn = await client.find_coordinator("x", key_type=KEY_TYPE_TRANSACTION)
        assert group.node_id == txn.node_id == 0
        # FindCoordinator v0 knows only groups: the group answer is not reused for the id
        old = await KafkaClient.connect(zoolog_kafka.bootstrap, versions={10: (0, 0)})
        try:
            assert (await old.find_coordinator("x", key_type=KEY_TYPE_GROUP)).node_id == 0
            with pytest.raises(KafkaResponseError) as caught:
                await old.find_coordinator("x", key_type=KEY_TYPE_TRANSACTION)
            assert caught.value.code == Err.UNSUPPORTED_VERSION
            assert "transactional id 'x'" in str(caught.value)
        finally:
            await old.close()
        with pytest.raises(KafkaResponseError) as caught:
            await client.find_coordinator("", key_type=KEY_TYPE_TRANSACTION)
        assert caught.value.code == Err.INVALID_REQUEST
    with_client(zoolog_kafka, body)


def test_list_and_describe(zoolog_kafka: KafkaServerThread) -> None:
    with_client(zoolog_kafka, lambda c: c.create_topic("t", 2))
    done = open_transaction(zoolog_kafka, "done", [("t", 0)])
    done.abort_transaction(20)
    app = open_transaction(zoolog_kafka, "app", [("t", 1), ("t", 0)])

    async def body(client: KafkaClient) -> None:
        listed = await client.list_transactions()
        assert [(t.transactional_id, t.state, t.coordinator_id) for t in listed] == \
            [("app", "Ongoing", 0), ("done", "CompleteAbort", 0)]
        app_pid = listed[0].producer_id
        assert await client.list_transactions(producer_ids=[app_pid]) == [listed[0]]
        assert await client.list_transactions(states=["CompleteAbort"]) == [listed[1]]
        with pytest.raises(ValueError, match="Bogus"):
            await client.list_transactions(states=["Bogus"])

        described = await client.describe_transactions(["nope", "app", "", "done"])
        assert [d.transactional_id for d in described] == ["nope", "app", "", "done"]
        nope, found, empty, finished = described
        assert nope.error is not None and nope.error.code == Err.TRANSACTIONAL_ID_NOT_FOUND
        assert empty.error is not None and empty.error.code == Err.INVALID_REQUEST
        assert found.error is None and finished.error is None
        assert (found.state, found.producer_id, found.producer_epoch, found.timeout_ms) == \
            ("Ongoing", app_pid, 0, 60000)
        assert found.partitions == (TopicPartition("t", 0), TopicPartition("t", 1))
        assert found.start_timestamp_ms > 0
        assert found.coordinator is not None and found.coordinator.node_id == 0
        assert (finished.state, finished.partitions) == ("CompleteAbort", ())

    with_client(zoolog_kafka, body)

    async def v0(client: KafkaClient) -> list[ListedTransaction]:
        with pytest.raises(KafkaResponseError) as caught:
            await client.list_transactions(duration_ms=0)
        assert caught.value.code == Err.UNSUPPORTED_VERSION
        return await client.list_transactions(states=["Ongoing"])
    assert [t.transactional_id for t in with_client(zoolog_kafka, v0,
                                                    versions={66: (0, 0)})] == ["app"]
    app.abort_transaction(20)


def test_fence_waits_for_the_abort_then_bumps_the_epoch(
        zoolog_kafka: KafkaServerThread) -> None:
    with_client(zoolog_kafka, lambda c: c.create_topic("t", 1))
    app = open_transaction(zoolog_kafka, "app", [("t", 0)])

    async def body(client: KafkaClient) -> None:
        lso = (await client.list_offsets("t", LATEST, isolation=READ_COMMITTED))[0].offset
        assert lso == 0
        pid = (await client.describe_transactions(["app"]))[0].producer_id
        # Ongoing at epoch 0: the coordinator answers CONCURRENT_TRANSACTIONS while it
        # aborts at epoch 1; the retry once it completed gets epoch 2
        assert await client.fence_transactional_id("app") == (pid, 2)
        described = (await client.describe_transactions(["app"]))[0]
        assert (described.state, described.producer_epoch) == ("Empty", 2)
        ends = await client.offset_range("t")
        lso = (await client.list_offsets("t", LATEST, isolation=READ_COMMITTED))[0].offset
        assert lso == ends[0][1] == 2  # the record and the ABORT marker
        assert await client.fence_transactional_id("app") == (pid, 3)
        # an id nobody used is created, as Kafka's fenceProducers does
        new_pid, epoch = await client.fence_transactional_id("fresh")
        assert new_pid != pid and epoch == 0
        with pytest.raises(KafkaResponseError) as caught:
            await client.fence_transactional_id("app", transaction_timeout_ms=10**9)
        assert caught.value.code == Err.INVALID_TRANSACTION_TIMEOUT
    with_client(zoolog_kafka, body)
    with pytest.raises(ck.KafkaException) as caught:
        app.commit_transaction(10)
    assert caught.value.args[0].fatal()


def test_describe_producers_and_abort_a_hanging_transaction(
        zoolog_kafka: KafkaServerThread) -> None:
    with_client(zoolog_kafka, lambda c: c.create_topic("t", 2))
    app = open_transaction(zoolog_kafka, "app", [("t", 0), ("t", 0), ("t", 1)])

    async def body(client: KafkaClient) -> None:
        producers = await client.describe_producers("t")
        assert sorted(producers) == [0, 1]
        (zero,), (one,) = producers[0], producers[1]
        assert zero.producer_id == one.producer_id
        assert (zero.current_txn_start_offset, zero.last_sequence, zero.coordinator_epoch) \
            == (0, 1, -1)
        assert (one.current_txn_start_offset, one.last_sequence) == (0, 0)
        assert await client.find_open_transaction("t", 0, 1) is None
        assert await client.find_open_transaction("t", 0, 0) == zero
        with pytest.raises(ValueError, match="no partition 2"):
            await client.describe_producers("t", [2])
        with pytest.raises(ValueError, match="no partition 2"):
            await client.abort_hanging_transaction("t", 2, zero.producer_id, 0, 0)

        await client.abort_hanging_transaction("t", 0, zero.producer_id,
                                               zero.producer_epoch, 0)
        lso = await client.list_offsets("t", LATEST, isolation=READ_COMMITTED)
        ends = await client.offset_range("t")
        assert (lso[0].offset, ends[0][1]) == (3, 3)  # two records and the marker
        assert (lso[1].offset, ends[1][1]) == (0, 1)  # partition 1 is still open
        after = (await client.describe_producers("t", [0]))[0]
        assert [(s.producer_id, s.current_txn_start_offset, s.coordinator_epoch)
                for s in after] == [(zero.producer_id, -1, 0)]
        # the coordinator was not told: it still holds the transaction open
        assert (await client.describe_transactions(["app"]))[0].state == "Ongoing"
        with pytest.raises(KafkaResponseError) as caught:
            await client.abort_hanging_transaction("t", 1, one.producer_id, -5, 0)
        assert caught.value.code == Err.INVALID_PRODUCER_EPOCH
        assert "topic 't' partition 1" in str(caught.value)
    with_client(zoolog_kafka, body)
    app.abort_transaction(20)  # the coordinator aborts what is left, its markers land
    ends = with_client(zoolog_kafka, lambda c: c.offset_range("t"))
    lso = with_client(zoolog_kafka, lambda c: c.list_offsets("t", LATEST,
                                                             isolation=READ_COMMITTED))
    assert [lso[p].offset for p in (0, 1)] == [ends[0][1], ends[1][1]]
