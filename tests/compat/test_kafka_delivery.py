"""Delivery semantics, as runnable examples.

Where a consumer commits relative to its processing decides what a crash costs:

* at-most-once: commit, then process. A crash after the commit and before the processing
  loses those records: the next consumer starts after them.
* at-least-once: process, then commit. A crash after the processing and before the commit
  makes the next consumer process them again: nothing is lost, some work is repeated.

On the producing side, `acks` says how much of the broker's work a send waits for (0:
none, 1: the leader's append, all: every in-sync replica's), and a topic's
`min.insync.replicas` says how many in-sync replicas `acks=all` needs: with one broker,
min.insync.replicas=2 refuses acks=all sends (NOT_ENOUGH_REPLICAS) and still takes acks=1.

Each example uses one "mailer" that sends an e-mail per record; a "crash" is the mailer
stopping at the worst moment, and a second mailer in the same group takes over.
"""

from __future__ import annotations

import asyncio

import aiokafka
import aiokafka.errors
import confluent_kafka as ck
import kafka
import kafka.errors
import pytest
from tests.compat.kafka_helpers import create_topic, produce, read_log

from zoolog.testing import wait_until
from zoolog.testing.kafka_servers import KafkaServerThread

EMAILS = [f"email-{i:02d}".encode() for i in range(12)]


def mailer(bootstrap: str) -> ck.Consumer:
    """A consumer of the "mailer" group that commits only when told to."""
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "mailer",
                            "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["outbox"])
    return consumer


def next_batch(consumer: ck.Consumer, size: int) -> list[ck.Message]:
    """Up to `size` records (waiting, bounded, until the first arrive)."""
    got: list[ck.Message] = []

    def arrived() -> bool:
        got.extend(m for m in consumer.consume(size - len(got), 0.2) if m.error() is None)
        return len(got) == size
    wait_until(arrived, 20, f"{size} records")
    return got


def test_at_most_once_commit_before_processing(zoolog_kafka: KafkaServerThread) -> None:
    bootstrap = zoolog_kafka.bootstrap
    create_topic(bootstrap, "outbox", 1)
    produce(bootstrap, "outbox", [(None, e) for e in EMAILS])
    sent: list[bytes] = []  # the e-mails that actually went out

    first = mailer(bootstrap)
    batch = next_batch(first, 4)
    for message in batch:           # process the first four normally...
        first.commit(message, asynchronous=False)  # commit first (at-most-once)
        sent.append(message.value())
    batch = next_batch(first, 3)    # ...then take three more
    first.commit(asynchronous=False)  # and commit them, before processing
    first.close()                   # the mailer crashes here: these three are never sent

    second = mailer(bootstrap)      # a new mailer resumes after the committed offset
    for message in next_batch(second, len(EMAILS) - 7):
        second.commit(message, asynchronous=False)
        sent.append(message.value())
    second.close()

    lost = [m.value() for m in batch]
    assert lost == EMAILS[4:7]
    assert sent == EMAILS[:4] + EMAILS[7:]  # each sent at most once; the three are lost


def test_at_least_once_commit_after_processing(zoolog_kafka: KafkaServerThread) -> None:
    bootstrap = zoolog_kafka.bootstrap
    create_topic(bootstrap, "outbox", 1)
    produce(bootstrap, "outbox", [(None, e) for e in EMAILS])
    sent: list[bytes] = []

    first = mailer(bootstrap)
    for message in next_batch(first, 4):
        sent.append(message.value())
    first.commit(asynchronous=False)  # commit after processing (at-least-once)
    for message in next_batch(first, 3):
        sent.append(message.value())  # these three are sent...
    first.close()                   # ...and the mailer crashes before committing them

    second = mailer(bootstrap)      # the new mailer resumes at the last commit
    for message in next_batch(second, len(EMAILS) - 4):
        sent.append(message.value())
    second.commit(asynchronous=False)
    second.close()

    assert set(sent) == set(EMAILS)  # nothing lost...
    assert sent == EMAILS[:7] + EMAILS[4:]  # ...the three were sent twice


# --- producer acks ----------------------------------------------------------------------


def send_all(client: str, bootstrap: str, topic: str, acks: str,
             values: list[bytes]) -> list[int | None]:
    """Send `values` with `acks`; return each send's acknowledged offset (None where the
    client gets no offset back, as with acks=0). A refused send raises."""
    if client == "confluent":
        producer = ck.Producer({"bootstrap.servers": bootstrap, "acks": acks,
                                "linger.ms": 5, "retries": 0,
                                "message.timeout.ms": 10_000})
        results: list[ck.Message] = []
        errors: list[ck.KafkaError] = []
        for value in values:
            producer.produce(topic, value=value, partition=0, on_delivery=lambda e, m: (
                errors.append(e) if e is not None else results.append(m)))
        assert producer.flush(30) == 0
        if errors:
            raise ck.KafkaException(errors[0])
        return [m.offset() if m.offset() is not None and m.offset() >= 0 else None
                for m in results]
    if client == "kafka-python":
        kp = kafka.KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False,
                                 acks=acks if acks == "all" else int(acks), retries=0,
                                 linger_ms=5)
        try:
            futures = [kp.send(topic, value=v, partition=0) for v in values]
            kp.flush(30)
            offsets = [f.get(10).offset for f in futures]
        finally:
            kp.close()
        return [o if o >= 0 else None for o in offsets]

    async def run() -> list[int | None]:
        ak = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap,
                                       acks=acks if acks == "all" else int(acks),
                                       request_timeout_ms=2500, retry_backoff_ms=50)
        await ak.start()
        try:
            futures = [await ak.send(topic, value=v, partition=0) for v in values]
            done = await asyncio.wait_for(asyncio.gather(*futures), 30)
        finally:
            await ak.stop()
        return [m.offset if m is not None and m.offset >= 0 else None for m in done]
    return asyncio.run(run())


@pytest.mark.parametrize("acks", ["0", "1", "all"])
@pytest.mark.parametrize("client", ["confluent", "kafka-python", "aiokafka"])
def test_producer_acks_each_deliver(zoolog_kafka: KafkaServerThread, client: str,
                                    acks: str) -> None:
    """acks=0, 1 and all all deliver on a healthy broker; with 1 and all the client
    learns each record's offset."""
    bootstrap = zoolog_kafka.bootstrap
    create_topic(bootstrap, "receipts", 1)
    values = [f"{client}-{acks}-{i}".encode() for i in range(50)]
    offsets = send_all(client, bootstrap, "receipts", acks, values)
    if acks != "0":
        assert offsets == list(range(50))
    assert [r.value for r in read_log(bootstrap, "receipts")] == values


@pytest.mark.parametrize("client", ["confluent", "kafka-python", "aiokafka"])
def test_acks_all_refused_below_min_insync_replicas(zoolog_kafka: KafkaServerThread,
                                                    client: str) -> None:
    """min.insync.replicas=2 on a one-broker cluster: acks=all is refused with
    NOT_ENOUGH_REPLICAS (19) and nothing is appended; acks=1 is still taken."""
    bootstrap = zoolog_kafka.bootstrap
    create_topic(bootstrap, "ledger", 1, {"min.insync.replicas": "2"})
    if client == "confluent":
        with pytest.raises(ck.KafkaException) as raised:
            send_all(client, bootstrap, "ledger", "all", [b"must-be-safe"])
        assert raised.value.args[0].code() == ck.KafkaError.NOT_ENOUGH_REPLICAS
    elif client == "kafka-python":
        with pytest.raises(kafka.errors.NotEnoughReplicasError):
            send_all(client, bootstrap, "ledger", "all", [b"must-be-safe"])
    else:
        # aiokafka retries the retriable refusal until its request timeout, then raises it
        with pytest.raises(aiokafka.errors.NotEnoughReplicasError):
            send_all(client, bootstrap, "ledger", "all", [b"must-be-safe"])
    assert read_log(bootstrap, "ledger") == []
    assert send_all(client, bootstrap, "ledger", "1", [b"leader-only"]) == [0]
    assert [r.value for r in read_log(bootstrap, "ledger")] == [b"leader-only"]
