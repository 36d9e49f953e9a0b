"""`zoolog txn` against a real zoolog broker, with confluent-kafka transactional producers
leaving transactions open: list (text, json, each filter), describe, producers, abort by
transactional id (the transaction aborted, read_committed reaches the high watermark, the
old producer fenced) and abort of a hanging transaction in one partition (by start offset
and by producer id); Kafka errors exit 1, bad argument combinations exit 2; one run through
`python -m zoolog`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import confluent_kafka as ck
import pytest

from zoolog.cli.main import main
from zoolog.testing.kafka_servers import KafkaServerThread

FENCED = {ck.KafkaError._FENCED, ck.KafkaError.INVALID_PRODUCER_EPOCH,
          ck.KafkaError.PRODUCER_FENCED}


class Result(NamedTuple):
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Result]


@pytest.fixture
def cli(zoolog_kafka: KafkaServerThread, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run `zoolog ARGS...` in this process (brokers from $ZOOLOG_BROKERS)."""
    monkeypatch.setenv("ZOOLOG_BROKERS", zoolog_kafka.bootstrap)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)

    def run(*argv: str) -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return Result(code, out, err)
    return run


def open_transaction(server: KafkaServerThread, tid: str,
                     records: list[tuple[str, int]]) -> ck.Producer:
    """A transactional producer whose transaction holds one record per (topic, partition)
    of `records`, all in the log, left open."""
    producer = ck.Producer({"bootstrap.servers": server.bootstrap, "transactional.id": tid,
                            "linger.ms": 1})
    producer.init_transactions(20)
    producer.begin_transaction()
    for i, (topic, partition) in enumerate(records):
        producer.produce(topic, value=f"{tid}-{i}".encode(), partition=partition)
    assert producer.flush(20) == 0
    return producer


def plain_records(server: KafkaServerThread, topic: str, partition: int, count: int) -> None:
    producer = ck.Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 1})
    for i in range(count):
        producer.produce(topic, value=f"plain-{i}".encode(), partition=partition)
    assert producer.flush(20) == 0


def watermarks(server: KafkaServerThread, topic: str, partition: int, isolation: str
               ) -> tuple[int, int]:
    """(low, high) as a consumer at `isolation` sees them (high: the LSO in
    read_committed)."""
    consumer = ck.Consumer({"bootstrap.servers": server.bootstrap, "group.id": "wm",
                            "isolation.level": isolation})
    try:
        low, high = consumer.get_watermark_offsets(ck.TopicPartition(topic, partition),
                                                   timeout=10, cached=False)
        return low, high
    finally:
        consumer.close()


def lso_and_hw(server: KafkaServerThread, topic: str, partition: int) -> tuple[int, int]:
    return (watermarks(server, topic, partition, "read_committed")[1],
            watermarks(server, topic, partition, "read_uncommitted")[1])


def committed_values(server: KafkaServerThread, topic: str, partitions: int) -> set[bytes]:
    """Every value a read_committed consumer reads from `topic` up to its LSO."""
    consumer = ck.Consumer({"bootstrap.servers": server.bootstrap, "group.id": "reader",
                            "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        ends = {p: watermarks(server, topic, p, "read_committed")[1] for p in range(partitions)}
        consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING)
                         for p in range(partitions)])
        values: set[bytes] = set()
        deadline = time.monotonic() + 20
        while True:
            positions = {tp.partition: tp.offset for tp in consumer.position(
                [ck.TopicPartition(topic, p) for p in range(partitions)])}
            if all(ends[p] == 0 or positions[p] >= ends[p] for p in ends):
                return values
            assert time.monotonic() < deadline, (positions, ends)
            for message in consumer.consume(100, 0.2):
                assert message.error() is None, message.error()
                value = message.value()
                assert value is not None
                values.add(value)
    finally:
        consumer.close()


def table(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


# --- looking -------------------------------------------------------------------------------


def test_list_describe_and_producers_of_an_open_transaction(
        cli: Cli, zoolog_kafka: KafkaServerThread) -> None:
    assert cli("topic", "create", "orders", "-p", "2").code == 0
    assert cli("topic", "create", "audit", "-p", "1").code == 0
    plain_records(zoolog_kafka, "orders", 1, 2)  # the open transaction starts at offset 2
    done = open_transaction(zoolog_kafka, "done", [("orders", 0)])
    done.commit_transaction(20)
    before_ms = int(time.time() * 1000)
    app = open_transaction(zoolog_kafka, "app", [("orders", 1), ("orders", 1), ("audit", 0)])
    after_ms = int(time.time() * 1000)

    listed = cli("txn", "list", "--format", "json")
    assert listed.code == 0, listed.err
    by_id = {t["transactional_id"]: t for t in listed.json()}
    assert sorted(by_id) == ["app", "done"]
    assert by_id["app"]["state"] == "Ongoing" and by_id["done"]["state"] == "CompleteCommit"
    assert {t["coordinator"] for t in by_id.values()} == {0}
    app_pid, done_pid = by_id["app"]["producer_id"], by_id["done"]["producer_id"]
    assert app_pid != done_pid
    text = cli("txn", "list")
    assert text.code == 0 and table(text.out) == [
        ["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"],
        ["app", "0", str(app_pid), "Ongoing"],
        ["done", "0", str(done_pid), "CompleteCommit"]]

    def ids(*argv: str) -> list[str]:
        result = cli("txn", "list", "--format", "json", *argv)
        assert result.code == 0, result.err
        return [t["transactional_id"] for t in result.json()]
    assert ids("--state", "Ongoing") == ["app"]
    assert ids("--state", "Ongoing", "--state", "CompleteCommit") == ["app", "done"]
    assert ids("--state", "CompleteAbort") == []
    assert ids("--producer-id", str(done_pid)) == ["done"]
    assert ids("--state", "Ongoing", "--producer-id", str(done_pid)) == []
    # started more than 0 ms ago: "app", and "done" (a complete transaction keeps its start,
    # as in Kafka); more than an hour ago: neither
    assert ids("--duration-ms", "0") == ["app", "done"]
    assert ids("--state", "Ongoing", "--duration-ms", "0") == ["app"]
    assert ids("--duration-filter", "3600000") == []
    assert table(cli("txn", "list", "--state", "PrepareAbort").out) == [
        ["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"]]

    described = cli("txn", "describe", "app", "--format", "json")
    assert described.code == 0, described.err
    doc = described.json()
    assert doc["coordinator"]["node_id"] == 0
    assert doc["coordinator"]["port"] == int(zoolog_kafka.bootstrap.rsplit(":", 1)[1])
    assert (doc["transactional_id"], doc["producer_id"], doc["producer_epoch"],
            doc["state"]) == ("app", app_pid, 0, "Ongoing")
    assert doc["transaction_timeout_ms"] == 60000  # librdkafka's transaction.timeout.ms
    assert before_ms - 1000 <= doc["start_time_ms"] <= after_ms + 1000
    assert doc["duration_ms"] >= 0
    assert doc["partitions"] == [{"topic": "audit", "partition": 0},
                                 {"topic": "orders", "partition": 1}]
    lines = dict(line.split(None, 1) for line in cli("txn", "describe", "app").out.splitlines())
    assert lines["TRANSACTIONAL-ID"] == "app" and lines["STATE"] == "Ongoing"
    assert lines["COORDINATOR"] == f"0 ({zoolog_kafka.bootstrap})"
    assert lines["PRODUCER-ID"] == str(app_pid) and lines["PRODUCER-EPOCH"] == "0"
    assert lines["TIMEOUT-MS"] == "60000" and lines["PARTITIONS"] == "audit-0,orders-1"
    assert int(lines["START-TIME-MS"]) == doc["start_time_ms"]
    finished = cli("txn", "describe", "done", "--format", "json").json()
    assert finished["state"] == "CompleteCommit" and finished["partitions"] == []
    assert finished["start_time_ms"] <= doc["start_time_ms"]  # the committed one's start

    producers = cli("txn", "producers", "--topic", "orders", "--format", "json")
    assert producers.code == 0, producers.err
    rows = producers.json()["producers"]
    assert [(r["partition"], r["producer_id"]) for r in rows] == [(0, done_pid), (1, app_pid)]
    done_row, app_row = rows
    assert app_row["current_txn_start_offset"] == 2
    assert app_row["producer_epoch"] == 0 and app_row["last_sequence"] == 1
    assert app_row["coordinator_epoch"] is None  # no marker of it written yet
    assert before_ms - 1000 <= app_row["last_timestamp_ms"] <= after_ms + 1000
    assert done_row["current_txn_start_offset"] is None  # committed
    assert done_row["coordinator_epoch"] == 0
    only = cli("txn", "producers", "-t", "orders", "-p", "1")
    assert table(only.out) == [
        ["PARTITION", "PRODUCER-ID", "PRODUCER-EPOCH", "COORDINATOR-EPOCH", "LAST-SEQUENCE",
         "LAST-TIMESTAMP", "CURRENT-TXN-START-OFFSET"],
        ["1", str(app_pid), "0", "-", "1", str(app_row["last_timestamp_ms"]), "2"]]
    app.abort_transaction(20)


# --- aborting ------------------------------------------------------------------------------


def test_abort_by_transactional_id_aborts_it_and_fences_the_producer(
        cli: Cli, zoolog_kafka: KafkaServerThread) -> None:
    assert cli("topic", "create", "orders", "-p", "2").code == 0
    committed = open_transaction(zoolog_kafka, "app", [("orders", 0), ("orders", 1)])
    committed.commit_transaction(20)
    del committed
    app = open_transaction(zoolog_kafka, "app", [("orders", 0), ("orders", 1), ("orders", 1)])
    pid = cli("txn", "describe", "app", "--format", "json").json()["producer_id"]
    for partition in (0, 1):
        lso, hw = lso_and_hw(zoolog_kafka, "orders", partition)
        assert lso < hw

    aborted = cli("txn", "abort", "--transactional-id", "app")
    assert aborted.code == 0, aborted.err
    # the epoch after init_transactions twice is 1; the fence bumps it for the abort (2),
    # the InitProducerId once the abort completed bumps it again (3)
    assert aborted.out == (f"Aborted the open transaction of app and fenced its producer "
                           f"(producer id {pid}, epoch now 3)\n")
    for partition in (0, 1):
        lso, hw = lso_and_hw(zoolog_kafka, "orders", partition)
        assert lso == hw
    assert committed_values(zoolog_kafka, "orders", 2) == {b"app-0", b"app-1"}  # the first
    after = cli("txn", "describe", "app", "--format", "json").json()
    assert (after["state"], after["producer_id"], after["producer_epoch"],
            after["partitions"]) == ("Empty", pid, 3, [])
    with pytest.raises(ck.KafkaException) as caught:
        app.commit_transaction(10)
    error = caught.value.args[0]
    assert error.fatal() and error.code() in FENCED, error

    again = cli("txn", "abort", "--transactional-id", "app", "--format", "json")
    assert again.code == 0 and again.json() == {
        "transactional_id": "app", "previous_state": "Empty", "aborted": False,
        "producer_id": pid, "producer_epoch": 4}
    assert cli("txn", "abort", "--transactional-id", "app").out == (
        f"Fenced the producer of app, which had no open transaction (Empty; producer id "
        f"{pid}, epoch now 5)\n")

    # the partitions know the abort's epoch (2): a marker at an older epoch is refused
    stale = cli("txn", "abort", "--topic", "orders", "-p", "0", "--producer-id", str(pid),
                "--producer-epoch", "1")
    assert stale.code == 1 and stale.out == ""
    assert stale.err.startswith("zoolog txn abort: INVALID_PRODUCER_EPOCH (error code 47)")


def test_abort_hanging_transactions_in_a_partition(
        cli: Cli, zoolog_kafka: KafkaServerThread) -> None:
    assert cli("topic", "create", "orders", "-p", "2").code == 0
    plain_records(zoolog_kafka, "orders", 0, 3)
    first = open_transaction(zoolog_kafka, "first", [("orders", 0), ("orders", 1)])
    second = open_transaction(zoolog_kafka, "second", [("orders", 1)])
    rows = cli("txn", "producers", "-t", "orders", "--format", "json").json()["producers"]
    starts = {(r["partition"], r["producer_id"]): r["current_txn_start_offset"] for r in rows}
    pids = {t["transactional_id"]: t["producer_id"]
            for t in cli("txn", "list", "--format", "json").json()}
    assert starts == {(0, pids["first"]): 3, (1, pids["first"]): 0, (1, pids["second"]): 1}

    missing = cli("txn", "abort", "--topic", "orders", "-p", "0", "--start-offset", "1")
    assert missing.code == 1 and missing.err == (
        "zoolog txn abort: no open transaction starts at offset 1 of orders-0 "
        "(see `zoolog txn producers`)\n")

    lso, hw = lso_and_hw(zoolog_kafka, "orders", 0)
    assert (lso, hw) == (3, 4)
    by_offset = cli("txn", "abort", "--topic", "orders", "--partition", "0",
                    "--start-offset", "3")
    assert by_offset.code == 0, by_offset.err
    assert by_offset.out == (f"Wrote an ABORT marker to orders-0 for producer "
                             f"{pids['first']} (epoch 0, coordinator epoch 0)\n")
    assert lso_and_hw(zoolog_kafka, "orders", 0) == (5, 5)  # past the marker
    rows = cli("txn", "producers", "-t", "orders", "-p", "0", "--format", "json").json()
    assert [(r["producer_id"], r["current_txn_start_offset"], r["coordinator_epoch"])
            for r in rows["producers"]] == [(pids["first"], None, 0)]

    # partition 1: "first" (from 0) and "second" (from 1) open; abort "first" by producer id
    assert lso_and_hw(zoolog_kafka, "orders", 1) == (0, 2)
    by_pid = cli("txn", "abort", "--topic", "orders", "-p", "1", "--producer-id",
                 str(pids["first"]), "--producer-epoch", "0", "--coordinator-epoch", "-1",
                 "--format", "json")
    assert by_pid.code == 0, by_pid.err
    assert by_pid.json() == {"topic": "orders", "partition": 1,
                             "producer_id": pids["first"], "producer_epoch": 0,
                             "coordinator_epoch": 0, "start_offset": None}
    assert lso_and_hw(zoolog_kafka, "orders", 1) == (1, 3)  # "second" still holds it at 1
    rows = cli("txn", "producers", "-t", "orders", "-p", "1", "--format", "json").json()
    assert {r["producer_id"]: r["current_txn_start_offset"] for r in rows["producers"]} == \
        {pids["first"]: None, pids["second"]: 1}
    second.commit_transaction(20)
    assert committed_values(zoolog_kafka, "orders", 2) == \
        {b"plain-0", b"plain-1", b"plain-2", b"second-0"}
    del first  # its coordinator still holds it Ongoing: the tool does not tell it


# --- errors --------------------------------------------------------------------------------


def test_kafka_errors_exit_1_naming_the_code(cli: Cli) -> None:
    unknown = cli("txn", "describe", "nope")
    assert unknown.code == 1 and unknown.out == ""
    assert unknown.err == ("zoolog txn describe: TRANSACTIONAL_ID_NOT_FOUND (error code 105): "
                           "transactional id 'nope'\n")
    not_created = cli("txn", "abort", "--transactional-id", "nope")
    assert not_created.code == 1 and "TRANSACTIONAL_ID_NOT_FOUND" in not_created.err
    assert cli("txn", "list", "--format", "json").json() == []  # the abort created nothing
    empty = cli("txn", "describe", "")
    assert empty.code == 1 and "INVALID_REQUEST (error code 42)" in empty.err
    for argv in (["txn", "producers", "--topic", "nope"],
                 ["txn", "abort", "--topic", "nope", "-p", "0", "--start-offset", "0"]):
        missing = cli(*argv)
        assert missing.code == 1, argv
        assert "UNKNOWN_TOPIC_OR_PARTITION (error code 3)" in missing.err, argv


def test_usage_errors_exit_2(cli: Cli) -> None:
    assert cli("topic", "create", "t", "-p", "2").code == 0
    for argv in (["txn"], ["txn", "describe"], ["txn", "producers"],
                 ["txn", "list", "--state", "Bogus"], ["txn", "list", "--producer-id", "x"],
                 ["txn", "producers", "-t", "t", "-p", "one"],
                 ["txn", "abort", "--start-offset", "soon"]):
        with pytest.raises(SystemExit) as info:
            cli(*argv)
        assert info.value.code == 2, argv
    for argv in (["txn", "abort"],
                 ["txn", "abort", "--transactional-id", "x", "--topic", "t"],
                 ["txn", "abort", "--transactional-id", "x", "--producer-id", "1"],
                 ["txn", "abort", "--topic", "t", "--start-offset", "0"],
                 ["txn", "abort", "-p", "0", "--start-offset", "0"],
                 ["txn", "abort", "--topic", "t", "-p", "0"],
                 ["txn", "abort", "--topic", "t", "-p", "0", "--start-offset", "0",
                  "--producer-id", "1", "--producer-epoch", "0"],
                 ["txn", "abort", "--topic", "t", "-p", "0", "--producer-id", "1"],
                 ["txn", "abort", "--topic", "t", "-p", "0", "--start-offset", "0",
                  "--coordinator-epoch", "0"],
                 ["txn", "producers", "-t", "t", "-p", "5"],
                 ["txn", "abort", "--topic", "t", "-p", "5", "--producer-id", "1",
                  "--producer-epoch", "0"]):
        result = cli(*argv)
        assert result.code == 2, (argv, result)
        assert result.err.count("\n") == 1 and result.err.startswith("zoolog txn "), result.err


def test_through_python_dash_m(zoolog_kafka: KafkaServerThread, cli: Cli) -> None:
    assert cli("topic", "create", "orders", "-p", "1").code == 0
    producer = open_transaction(zoolog_kafka, "app", [("orders", 0)])
    env = dict(os.environ, ZOOLOG_BROKERS=zoolog_kafka.bootstrap)
    done = subprocess.run([sys.executable, "-m", "zoolog", "txn", "list", "--format", "json"],
                          capture_output=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert [(t["transactional_id"], t["state"]) for t in json.loads(done.stdout)] == \
        [("app", "Ongoing")]
    producer.abort_transaction(20)
