"""A hanging transaction is aborted when the broker starts.

A partition holds a transaction open that the coordinator does not know as Ongoing there
(here: a transactional batch of an unknown producer written straight into the partition,
past the produce-time verification, as data whose AddPartitionsToTxn record was lost would
be). Its last stable offset would stay behind forever and read_committed consumers would
stall (Kafka needs `kafka-transactions.sh find-hanging` and `abort`). At start the
transaction runtime writes the ABORT marker itself; a transaction the coordinator does hold
open on the same partition is left to end as its producer or its timeout decides.
"""

from __future__ import annotations

from pathlib import Path

import confluent_kafka as ck
from tests.compat.kafka_helpers import create_topic

from zoolog.broker.validation import validate
from zoolog.protocol.kafka.record_batch import Record, build_batch
from zoolog.testing.kafka_servers import KafkaServerThread

NOW_MS = 1_800_000_000_000


def offsets(bootstrap: str, isolation: str) -> int:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "o",
                            "isolation.level": isolation})
    try:
        return consumer.get_watermark_offsets(ck.TopicPartition("hang", 0), timeout=10,
                                              cached=False)[1]
    finally:
        consumer.close()


def test_a_hanging_transaction_is_aborted_at_start(tmp_path: Path) -> None:
    server = KafkaServerThread(tmp_path / "kafka").start()
    try:
        create_topic(server.bootstrap, "hang", 1)
        raw = build_batch([Record(0, 0, b"k", b"hanging")], base_timestamp=NOW_MS,
                          producer_id=4242, producer_epoch=3, base_sequence=0,
                          transactional=True)

        def write_past_verification() -> tuple[int, int]:
            assert server.node is not None and server.node.broker is not None
            broker = server.node.broker
            partition = broker.partition("hang", 0)
            valid = validate(memoryview(bytearray(raw)), broker.rules("hang"), NOW_MS)
            partition.append_client(valid.batches, -1, NOW_MS)
            return partition.last_stable_offset, partition.high_watermark

        assert server.call(write_past_verification) == (0, 1)
        real = ck.Producer({"bootstrap.servers": server.bootstrap, "transactional.id": "real",
                            "transaction.timeout.ms": 600_000})
        real.init_transactions(20)
        real.begin_transaction()
        real.produce("hang", value=b"open", partition=0)
        assert real.flush(20) == 0
        assert offsets(server.bootstrap, "read_committed") == 0
        server.restart()
        assert server.node is not None
        assert server.node.txn_runtime.resolved_hanging == 1
        # the hanging one is aborted at offset 2; the real one (offset 1) is still open
        assert offsets(server.bootstrap, "read_committed") == 1
        assert offsets(server.bootstrap, "read_uncommitted") == 3
        real.commit_transaction(20)
        assert offsets(server.bootstrap, "read_committed") == \
            offsets(server.bootstrap, "read_uncommitted") == 4
        consumer = ck.Consumer({"bootstrap.servers": server.bootstrap, "group.id": "r",
                                "isolation.level": "read_committed",
                                "auto.offset.reset": "earliest"})
        consumer.assign([ck.TopicPartition("hang", 0, 0)])
        seen: list[bytes] = []
        for _ in range(20):
            seen += [m.value() for m in consumer.consume(10, 0.5) if m.error() is None]
            if seen:
                break
        consumer.close()
        assert seen == [b"open"]
        server.restart()
        assert server.node is not None and server.node.txn_runtime.resolved_hanging == 0
    finally:
        server.stop()
