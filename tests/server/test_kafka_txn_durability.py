"""`kill -9` of `zoolog up` in the middle of transactions.

One transactional producer commits small transactions (10 records over 3 partitions) in a
tight loop, so the kill lands between them, in the middle of one (open), or while one is
being decided (its PrepareCommit durable, markers not all written); a second producer holds
a transaction open. After a restart on the same data directory:

- no read_committed consumer ever sees part of a transaction: every transaction it sees is
  whole, every one whose commit was acknowledged is there, the open ones never appear;
- open transactions are aborted at their timeout (the last stable offset reaches the high
  watermark on every partition), a transaction left deciding is completed;
- the producer and transaction state were rebuilt from the logs: the same transactional id
  starts again at a bumped epoch and commits.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

import confluent_kafka as ck
from confluent_kafka.admin import AdminClient, NewTopic
from tests.server.up_process import Up

from zoolog.testing import wait_until

PARTITIONS = 3
PER_TXN = 10
TIMEOUT_MS = 4000


def watermarks(bootstrap: str, isolation: str) -> list[int]:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "wm",
                            "isolation.level": isolation, "log_level": 0})
    try:
        return [consumer.get_watermark_offsets(ck.TopicPartition("tx", p), timeout=10,
                                               cached=False)[1] for p in range(PARTITIONS)]
    finally:
        consumer.close()


def read_committed(bootstrap: str) -> list[bytes]:
    ends = watermarks(bootstrap, "read_committed")
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "audit",
                            "enable.auto.commit": False, "isolation.level": "read_committed",
                            "log_level": 0})
    consumer.assign([ck.TopicPartition("tx", p, ck.OFFSET_BEGINNING)
                     for p in range(PARTITIONS) if ends[p] > 0])
    values: list[bytes] = []

    def caught_up() -> bool:
        for message in consumer.consume(10000, 0.2):
            assert message.error() is None, message.error()
            values.append(message.value())
        positions = consumer.position([ck.TopicPartition("tx", p) for p in range(PARTITIONS)])
        return all(ends[tp.partition] == 0 or tp.offset >= ends[tp.partition]
                   for tp in positions)

    wait_until(caught_up, 60, f"reading tx up to its last stable offsets {ends}")
    consumer.close()
    return values


def test_kill_9_in_the_middle_of_transactions(tmp_path: Path) -> None:
    properties = tmp_path / "server.properties"
    properties.write_text("broker.id=0\n"
                          "transaction.abort.timed.out.transaction.cleanup.interval.ms=500\n")
    up = Up(tmp_path / "data", "--config", str(properties))
    up.start()
    admin = AdminClient({"bootstrap.servers": up.bootstrap})
    admin.create_topics([NewTopic("tx", PARTITIONS, 1)])["tx"].result(30)

    opener = ck.Producer({"bootstrap.servers": up.bootstrap, "transactional.id": "opener",
                          "transaction.timeout.ms": TIMEOUT_MS, "log_level": 0})
    opener.init_transactions(20)
    opener.begin_transaction()
    for i in range(6):
        opener.produce("tx", value=b"open-%d" % i, partition=i % PARTITIONS)
    assert opener.flush(20) == 0

    acknowledged: list[int] = []
    started: list[int] = []
    stop = threading.Event()

    def commit_loop() -> None:
        producer = ck.Producer({"bootstrap.servers": up.bootstrap, "transactional.id": "loop",
                                "transaction.timeout.ms": TIMEOUT_MS, "linger.ms": 1,
                                "log_level": 0})
        producer.init_transactions(20)
        n = 0
        while not stop.is_set():
            try:
                producer.begin_transaction()
                started.append(n)
                for i in range(PER_TXN):
                    producer.produce("tx", value=b"t%d-%d" % (n, i), partition=i % PARTITIONS)
                producer.commit_transaction(5)
            except ck.KafkaException:
                return  # the broker is gone
            acknowledged.append(n)
            n += 1

    worker = threading.Thread(target=commit_loop, daemon=True)
    worker.start()
    wait_until(lambda: len(acknowledged) >= 30, 60, "30 committed transactions")
    up.kill9()
    stop.set()
    worker.join(30)
    assert acknowledged, "no transaction was committed before the kill"

    up.start()
    # open transactions end at their timeout: the LSO reaches the high watermark
    wait_until(lambda: watermarks(up.bootstrap, "read_committed")
               == watermarks(up.bootstrap, "read_uncommitted"), 60,
               "every open transaction to be aborted or completed after the restart")
    by_txn: dict[bytes, set[bytes]] = defaultdict(set)
    values = read_committed(up.bootstrap)
    assert len(values) == len(set(values)), "a record was delivered twice"
    for value in values:
        assert not value.startswith(b"open-"), f"a record of an open transaction: {value!r}"
        by_txn[value.split(b"-")[0]].add(value)
    for txn, records in by_txn.items():
        assert len(records) == PER_TXN, f"transaction {txn!r} is partial: {sorted(records)}"
    seen = {int(txn[1:]) for txn in by_txn}
    assert set(acknowledged) <= seen, f"acknowledged commits lost: {set(acknowledged) - seen}"
    assert seen <= set(started)

    again = ck.Producer({"bootstrap.servers": up.bootstrap, "transactional.id": "loop",
                         "log_level": 0})
    again.init_transactions(30)
    again.begin_transaction()
    again.produce("tx", value=b"after-0", partition=0)
    again.commit_transaction(20)
    assert b"after-0" in read_committed(up.bootstrap)
    up.stop()
