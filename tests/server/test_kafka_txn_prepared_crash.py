"""A crash with a transaction decided but not complete: its PrepareCommit (or PrepareAbort)
record is durable, none of its markers is written. The broker is dropped without a clean
shutdown at exactly that point (the runtime's marker writing is held back, then the broker
crashes), restarted on the same data, and must complete the transaction from the
`__transaction_state` record alone: every partition gets its marker, read_committed
consumers see all of a committed transaction and none of an aborted one, and the waiting
producer's EndTxn, retried by librdkafka, succeeds.
"""

from __future__ import annotations

import threading
from pathlib import Path

import confluent_kafka as ck
import pytest
from tests.compat.kafka_helpers import create_topic

from zoolog.server.kafka_txn import TxnRuntime
from zoolog.testing import wait_until
from zoolog.testing.kafka_servers import KafkaServerThread


def watermarks(bootstrap: str, isolation: str) -> list[int]:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "wm",
                            "isolation.level": isolation})
    try:
        return [consumer.get_watermark_offsets(ck.TopicPartition("prep", p), timeout=10,
                                               cached=False)[1] for p in range(2)]
    finally:
        consumer.close()


def committed_values(bootstrap: str) -> set[bytes]:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                            "isolation.level": "read_committed",
                            "auto.offset.reset": "earliest", "enable.auto.commit": False})
    ends = watermarks(bootstrap, "read_committed")
    consumer.assign([ck.TopicPartition("prep", p, 0) for p in range(2) if ends[p]])
    got: set[bytes] = set()

    def caught_up() -> bool:
        for message in consumer.consume(100, 0.2):
            assert message.error() is None, message.error()
            got.add(message.value())
        positions = consumer.position([ck.TopicPartition("prep", p) for p in range(2)])
        return all(ends[tp.partition] == 0 or tp.offset >= ends[tp.partition]
                   for tp in positions)

    wait_until(caught_up, 30, "reading prep to its last stable offsets")
    consumer.close()
    return got


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "abort"])
def test_a_decided_transaction_is_completed_after_a_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commit: bool) -> None:
    server = KafkaServerThread(tmp_path / "kafka").start()
    try:
        create_topic(server.bootstrap, "prep", 2)
        producer = ck.Producer({"bootstrap.servers": server.bootstrap,
                                "transactional.id": "prepared", "linger.ms": 1})
        producer.init_transactions(20)
        producer.begin_transaction()
        values = {b"r%d" % i for i in range(10)}
        for i, value in enumerate(sorted(values)):
            producer.produce("prep", value=value, partition=i % 2)
        assert producer.flush(20) == 0

        held = threading.Event()
        monkeypatch.setattr(TxnRuntime, "_markers", lambda self, write: held.set())
        outcome: list[object] = []

        def end() -> None:
            try:
                if commit:
                    producer.commit_transaction(60)
                else:
                    producer.abort_transaction(60)
                outcome.append("ok")
            except ck.KafkaException as exc:
                outcome.append(exc.args[0])

        ender = threading.Thread(target=end, daemon=True)
        ender.start()
        assert held.wait(20), "the coordinator never decided the transaction"
        assert watermarks(server.bootstrap, "read_committed") == [0, 0]  # no marker yet
        server.crash()
        monkeypatch.undo()
        server.start()
        wait_until(lambda: watermarks(server.bootstrap, "read_committed")
                   == watermarks(server.bootstrap, "read_uncommitted"), 30,
                   "the restarted coordinator to write the markers")
        assert watermarks(server.bootstrap, "read_uncommitted") == [6, 6]  # 5 records + marker
        assert committed_values(server.bootstrap) == (values if commit else set())
        ender.join(60)
        assert outcome == ["ok"], outcome
    finally:
        server.stop()
