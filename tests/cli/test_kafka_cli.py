"""`zoolog topic` and `zoolog group` against a real zoolog broker: every verb in text and
json, kcat's -o and -f semantics (compared with kcat itself), group lag after a
confluent-kafka consumer committed, seeks, error exit codes, and runs through
`python -m zoolog` in a subprocess."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import confluent_kafka as ck
import pytest
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from zoolog.cli.main import main
from zoolog.testing.kafka_servers import KafkaServerThread


class Result(NamedTuple):
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]


Cli = Callable[..., Result]


@pytest.fixture
def cli(zoolog_kafka: KafkaServerThread, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run `zoolog ARGS...` in this process (brokers from $ZOOLOG_BROKERS) with `stdin`."""
    monkeypatch.setenv("ZOOLOG_BROKERS", zoolog_kafka.bootstrap)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)

    def run(*argv: str, stdin: bytes = b"") -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return Result(code, out, err)
    return run


def zoolog_process(server: KafkaServerThread, *argv: str, stdin: bytes | None = None,
                   timeout_s: float = 60) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, ZOOLOG_BROKERS=server.bootstrap)
    return subprocess.run([sys.executable, "-m", "zoolog", *argv], input=stdin,
                          capture_output=True, timeout=timeout_s, env=env, check=False)


def kcat(server: KafkaServerThread, *argv: str) -> bytes:
    done = subprocess.run(["kcat", "-b", server.bootstrap, "-q", *argv], capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def produce_with_timestamps(server: KafkaServerThread, topic: str, base_ms: int,
                            count: int) -> None:
    producer = ck.Producer({"bootstrap.servers": server.bootstrap, "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, value=f"v{i}".encode(), key=f"k{i}".encode(), partition=0,
                         timestamp=base_ms + 1000 * i)
    assert producer.flush(20) == 0


def wait_for(condition: Callable[[], bool], timeout_s: float = 30,
             between: Callable[[], object] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        if between is not None:
            between()
        else:
            time.sleep(0.05)


# --- topics: admin --------------------------------------------------------------------------


def test_create_list_describe_delete_in_text_and_json(cli: Cli) -> None:
    created = cli("topic", "create", "orders", "-p", "3", "-r", "1",
                  "-c", "retention.ms=86400000", "-c", "cleanup.policy=compact")
    assert created == (0, "Created topic orders (3 partitions, replication factor 1)\n", "")
    as_json = cli("topic", "create", "events", "-p", "2", "--format", "json").json()
    assert as_json["topic"] == "events" and as_json["partitions"] == 2
    assert as_json["replication_factor"] == 1 and len(as_json["topic_id"]) == 22
    assert cli("topic", "create", "dry", "--dry-run").out.startswith("Validated topic dry")

    listed = cli("topic", "list")
    assert listed.out.splitlines() == ["NAME    PARTITIONS  REPLICAS",
                                       "events  2           1",
                                       "orders  3           1"]
    assert [t["topic"] for t in cli("topic", "list", "--format", "json").json()] == \
        ["events", "orders"]
    keyless = cli("topic", "produce", "orders", "-m", "a")
    assert keyless.code == 1 and "INVALID_RECORD" in keyless.err  # compacted: keys needed
    assert cli("topic", "produce", "orders", "-p", "1", "-k", "k", "-m", "a", "-m", "b"
               ).out == "1@0\n1@1\n"
    assert "__consumer_offsets" not in cli("topic", "list").out
    cli("topic", "consume", "orders", "-g", "someone", "-e")  # creates __consumer_offsets
    assert "__consumer_offsets" in cli("topic", "list", "-i").out

    described = cli("topic", "describe", "orders")
    assert described.code == 0
    lines = described.out.splitlines()
    assert lines[0] == "NAME                orders"
    assert lines[5] == "CONFIGS             cleanup.policy=compact, retention.ms=86400000"
    assert lines[7].split() == ["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR",
                                "LOG-START-OFFSET", "LOG-END-OFFSET"]
    assert [line.split() for line in lines[8:]] == [["0", "0", "0", "[0]", "[0]", "0", "0"],
                                                    ["1", "0", "0", "[0]", "[0]", "0", "2"],
                                                    ["2", "0", "0", "[0]", "[0]", "0", "0"]]
    doc = cli("topic", "describe", "orders", "--format", "json").json()
    assert doc["topic_id"] == lines[1].split()[1]
    assert doc["configs"] == {"cleanup.policy": "compact", "retention.ms": "86400000"}
    assert [(p["partition"], p["leader"], p["replicas"], p["isr"], p["log_start_offset"],
             p["log_end_offset"]) for p in doc["partitions"]] == \
        [(0, 0, [0], [0], 0, 0), (1, 0, [0], [0], 0, 2), (2, 0, [0], [0], 0, 0)]

    assert cli("topic", "delete", "orders", "events") == \
        (0, "Deleted topic orders\nDeleted topic events\n", "")
    assert cli("topic", "list", "--format", "json").json() == []


def test_alter_config_sets_and_deletes(cli: Cli) -> None:
    cli("topic", "create", "t", "-c", "retention.ms=1000")
    altered = cli("topic", "alter-config", "t", "--set", "cleanup.policy=compact",
                  "--set", "max.message.bytes=2000000", "--delete", "retention.ms")
    assert altered.code == 0
    assert altered.out == ("Altered topic t: set cleanup.policy=compact; "
                           "set max.message.bytes=2000000; deleted retention.ms\n")
    assert cli("topic", "describe", "t", "--format", "json").json()["configs"] == \
        {"cleanup.policy": "compact", "max.message.bytes": "2000000"}
    doc = cli("topic", "alter-config", "t", "--delete", "cleanup.policy",
              "--format", "json").json()
    assert doc == {"topic": "t", "set": {}, "deleted": ["cleanup.policy"]}
    bad = cli("topic", "alter-config", "t", "--set", "retention.ms=soon")
    assert bad.code == 1 and bad.err.startswith(
        "zoolog topic alter-config: INVALID_CONFIG (error code 40): ")
    assert cli("topic", "alter-config", "t").code == 2
    assert cli("topic", "alter-config", "t", "--set", "a=1", "--delete", "a").code == 2


def test_kafka_errors_exit_1_naming_the_code(cli: Cli) -> None:
    cli("topic", "create", "dup")
    again = cli("topic", "create", "dup")
    assert again.code == 1 and again.out == ""
    assert again.err == ("zoolog topic create: TOPIC_ALREADY_EXISTS (error code 36): "
                         "topic 'dup': Topic 'dup' already exists.\n")
    invalid = cli("topic", "create", "x", "-c", "no.such.config=1")
    assert invalid.code == 1
    assert invalid.err.startswith("zoolog topic create: INVALID_CONFIG (error code 40): ")
    assert "no.such.config" in invalid.err and invalid.err.count("\n") == 1
    bad_value = cli("topic", "create", "y", "-c", "retention.ms=forever")
    assert bad_value.code == 1 and "INVALID_CONFIG" in bad_value.err
    for argv in (["topic", "describe", "nope"], ["topic", "consume", "nope", "-e"],
                 ["topic", "produce", "nope", "-m", "x"],
                 ["topic", "alter-config", "nope", "--set", "retention.ms=1"]):
        missing = cli(*argv)
        assert missing.code == 1, argv
        assert "UNKNOWN_TOPIC_OR_PARTITION (error code 3)" in missing.err, argv
    deleted = cli("topic", "delete", "dup", "nope")
    assert deleted.code == 1 and deleted.out == "Deleted topic dup\n"
    assert deleted.err.startswith("zoolog topic delete: UNKNOWN_TOPIC_OR_PARTITION")
    as_json = cli("topic", "delete", "nope", "--format", "json")
    assert as_json.code == 1 and as_json.json() == [
        {"topic": "nope", "error": "UNKNOWN_TOPIC_OR_PARTITION", "error_code": 3}]


def test_usage_errors_exit_2(cli: Cli) -> None:
    cli("topic", "create", "t", "-p", "2")
    for argv in (["topic"], ["topic", "create"], ["topic", "produce", "t", "--acks", "2"],
                 ["group", "seek", "g", "--topic", "t"],
                 ["topic", "list", "--format", "yaml"]):
        with pytest.raises(SystemExit) as info:
            cli(*argv)
        assert info.value.code == 2, argv
    for argv in (["topic", "create", "t2", "-c", "novalue"],
                 ["topic", "consume", "t", "-o", "stored"],
                 ["topic", "consume", "t", "-o", "yesterday"],
                 ["topic", "consume", "t", "-o", "1", "-o", "2"],
                 ["topic", "consume", "t", "-f", "%z"],
                 ["topic", "consume", "t", "-f", "%s", "--format", "json"],
                 ["topic", "consume", "t", "-g", "g", "-p", "0"],
                 ["topic", "consume", "t", "-p", "5", "-e"],
                 ["topic", "produce", "t", "-p", "7", "-m", "x"],
                 ["topic", "produce", "t", "-H", "=v", "-m", "x"]):
        result = cli(*argv)
        assert result.code == 2, (argv, result)
        assert result.err.count("\n") == 1 and result.err.startswith("zoolog "), result.err


def test_brokers_from_flag_and_environment(cli: Cli, zoolog_kafka: KafkaServerThread,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZOOLOG_BROKERS")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", zoolog_kafka.bootstrap)
    assert cli("topic", "create", "from-env").code == 0
    monkeypatch.setenv("ZOOLOG_BROKERS", "127.0.0.1:1")  # wins over KAFKA_BOOTSTRAP_SERVERS
    down = cli("topic", "list")
    assert down.code == 1
    assert down.err.startswith("zoolog topic list: cannot reach the brokers at 127.0.0.1:1")
    assert cli("topic", "list", "-b", zoolog_kafka.bootstrap).out.splitlines()[1:] == \
        ["from-env  1           1"]


# --- produce -------------------------------------------------------------------------------


def test_produce_keys_headers_and_partitioning(cli: Cli, zoolog_kafka: KafkaServerThread
                                               ) -> None:
    cli("topic", "create", "p", "-p", "4")
    lines = b"".join(b"key-%d:value %d\n" % (i, i) for i in range(20)) + b"\nno delimiter\n"
    produced = cli("topic", "produce", "p", "-K", ":", "-H", "source=cli", "-H", "flag",
                   stdin=lines)
    assert produced.code == 0 and produced.err == ""
    landed = [tuple(int(x) for x in line.split("@")) for line in produced.out.splitlines()]
    assert len(landed) == 21  # the empty line is skipped, as kcat does
    for i, (partition, _) in enumerate(landed[:20]):
        # the Java client's partitioner, as kafka-python computes it
        assert partition == (kafka_python_murmur2(b"key-%d" % i) & 0x7FFFFFFF) % 4
    records = cli("topic", "consume", "p", "-e", "--format", "json").json_lines()
    by_value = {r["value"]: r for r in records}
    assert by_value["value 3"]["key"] == "key-3"
    assert by_value["value 3"]["headers"] == [{"key": "source", "value": "cli"},
                                              {"key": "flag", "value": None}]
    assert by_value["no delimiter"]["key"] is None
    for record in records:
        assert (record["partition"], record["offset"]) in landed

    # a fixed key; -K keys win over it
    fixed = cli("topic", "produce", "p", "-k", "same", "-K", "=", stdin=b"a\nb\nown=c\n")
    partitions = [line.split("@")[0] for line in fixed.out.splitlines()]
    same = str((kafka_python_murmur2(b"same") & 0x7FFFFFFF) % 4)
    own = str((kafka_python_murmur2(b"own") & 0x7FFFFFFF) % 4)
    assert partitions == [same, same, own]

    # no key: round robin; -p: that partition
    cli("topic", "create", "rr", "-p", "3")
    spread = cli("topic", "produce", "rr", "-m", "1", "-m", "2", "-m", "3", "-m", "4",
                 "-m", "5", "-m", "6")
    assert sorted(line.split("@")[0] for line in spread.out.splitlines()) == \
        ["0", "0", "1", "1", "2", "2"]
    pinned = cli("topic", "produce", "rr", "-p", "2", "--format", "json", stdin=b"x\ny\n")
    assert [(r["partition"], r["offset"]) for r in pinned.json_lines()] == [(2, 2), (2, 3)]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_produce_compressed_with_each_acks(cli: Cli, zoolog_kafka: KafkaServerThread,
                                           codec: str) -> None:
    cli("topic", "create", "z", "-p", "1")
    for acks in ("all", "1", "0"):
        produced = cli("topic", "produce", "z", "-z", codec, "--acks", acks,
                       stdin=b"".join(b"%s-%d\n" % (acks.encode(), i) for i in range(50)))
        assert produced.code == 0
        offsets = [line.split("@")[1] for line in produced.out.splitlines()]
        assert offsets == (["-1"] * 50 if acks == "0" else
                           [str(i + (50 if acks == "1" else 0)) for i in range(50)])
    # acks=0 gets no answer: wait until the broker has the last batch
    wait_for(lambda: kcat(zoolog_kafka, "-C", "-t", "z", "-e", "-o", "beginning",
                          "-f", "%o\n").count(b"\n") == 150)
    values = kcat(zoolog_kafka, "-C", "-t", "z", "-e", "-o", "beginning").split(b"\n")[:-1]
    assert values == [b"%s-%d" % (acks, i) for acks in (b"all", b"1", b"0")
                      for i in range(50)]


def test_produce_summary_progress_and_messages(cli: Cli) -> None:
    cli("topic", "create", "s", "-p", "2")
    summary = cli("topic", "produce", "s", "--summary", "-K", ",",
                  stdin=b"".join(b"%d,x\n" % i for i in range(10)))
    lines = summary.out.splitlines()
    assert lines[0] == "Produced 10 records to s"
    counts = sorted(int(line.split()[2]) for line in lines[1:])
    assert sum(counts) == 10 and len(counts) == 2
    doc = cli("topic", "produce", "s", "--summary", "--format", "json", "-p", "1",
              "-m", "a", "-m", "", "-m", "c").json()
    assert doc["records"] == 3  # -m values are produced as given, empty ones too
    assert [(p["partition"], p["records"], p["last_offset"] - p["first_offset"])
            for p in doc["partitions"]] == [(1, 3, 2)]

    many = b"".join(b"record %d\n" % i for i in range(30_000))
    progress = cli("topic", "produce", "s", "--summary", "--progress", "--progress-every",
                   "5000", stdin=many)
    assert progress.code == 0 and progress.out.startswith("Produced 30000 records to s\n")
    reports = progress.err.splitlines()
    assert len(reports) >= 3
    assert all(r.startswith("zoolog topic produce: ") for r in reports)
    assert reports[-1].startswith("zoolog topic produce: 30000 records in ")
    quiet = cli("topic", "produce", "s", "--summary", stdin=b"no progress\n")
    assert quiet.err == ""  # stderr is no terminal and --progress not given


# --- consume -------------------------------------------------------------------------------


def test_consume_offsets_like_kcat(cli: Cli, zoolog_kafka: KafkaServerThread) -> None:
    cli("topic", "create", "ts", "-p", "1")
    base = 1_700_000_000_000
    produce_with_timestamps(zoolog_kafka, "ts", base, 10)

    def offsets(*argv: str) -> list[int]:
        result = cli("topic", "consume", "ts", "-f", "%o\\n", *argv)
        assert result.code == 0, result
        return [int(x) for x in result.out.split()]

    assert offsets("-e") == list(range(10))
    assert offsets("-o", "beginning", "-e") == list(range(10))
    assert offsets("-o", "end", "-e") == []
    assert offsets("-o", "4", "-c", "2") == [4, 5]
    assert offsets("-o", "-3", "-e") == [7, 8, 9]
    assert offsets("-o", "-30", "-e") == list(range(10))  # clamped to the log start
    assert offsets("-o", f"s@{base + 5000}", "-e") == [5, 6, 7, 8, 9]
    assert offsets("-o", f"s@{base + 4500}", "-e") == [5, 6, 7, 8, 9]
    assert offsets("-o", f"s@{base + 99_000}", "-e") == []  # nothing that late: the end
    # e@: stops before the first record at or after it, without -e
    assert offsets("-o", f"e@{base + 3000}") == [0, 1, 2]
    assert offsets("-o", f"s@{base + 2000}", "-o", f"e@{base + 6000}") == [2, 3, 4, 5]
    assert offsets("-o", "8", "-o", f"e@{base + 3000}") == []
    # the same answers kcat gives
    for spec in ("-3", f"s@{base + 4500}", "4"):
        ours = cli("topic", "consume", "ts", "-o", spec, "-e", "-f", "%o %k %s %T\\n").out
        theirs = kcat(zoolog_kafka, "-C", "-t", "ts", "-o", spec, "-e",
                      "-f", "%o %k %s %T\\n").decode()
        assert ours == theirs
    assert cli("topic", "consume", "ts", "-o", f"s@{base + 9000}", "-e",
               "-f", "%T\\n").out == f"{base + 9000}\n"


def test_consume_format_tokens_match_kcat(zoolog_kafka: KafkaServerThread) -> None:
    producer = ck.Producer({"bootstrap.servers": zoolog_kafka.bootstrap})
    producer.produce("fmt", value=b"hello", key=b"k1", headers=[("a", b"1"), ("b", None)],
                     partition=0, timestamp=1_600_000_000_123)
    producer.produce("fmt", value=None, key=None, partition=0, timestamp=1_600_000_000_456)
    producer.produce("fmt", value=b"", key=b"", headers=[("e", b"")], partition=0,
                     timestamp=1_600_000_000_789)
    producer.produce("fmt", value=b"\x00\xffbin", key=b"k\n", partition=0)
    assert producer.flush(20) == 0
    fmt = "%t|%p|%o|%k|%K|%s|%S|%R|%T|%h|%%|\\t\\x41\\101\\q\\n"
    ours = zoolog_process(zoolog_kafka, "topic", "consume", "fmt", "-e", "-f", fmt)
    assert ours.returncode == 0, ours.stderr
    theirs = kcat(zoolog_kafka, "-C", "-t", "fmt", "-e", "-o", "beginning", "-f", fmt)
    assert ours.stdout == theirs
    assert ours.stdout.startswith(b"fmt|0|0|k1|2|hello|5|\x00\x00\x00\x05|1600000000123|"
                                  b"a=1,b=NULL|%|\tAeq\n")


def test_consume_json_lines_partitions_and_isolation(cli: Cli) -> None:
    cli("topic", "create", "j", "-p", "3")
    for p in range(3):
        cli("topic", "produce", "j", "-p", str(p), "-k", f"key{p}", "-H", "h=v",
            "-m", f"value{p}")
    lines = cli("topic", "consume", "j", "-e", "--format", "json").json_lines()
    assert [(r["partition"], r["offset"], r["key"], r["value"]) for r in lines] == \
        [(0, 0, "key0", "value0"), (1, 0, "key1", "value1"), (2, 0, "key2", "value2")]
    assert all(r["topic"] == "j" and r["timestamp_type"] == "CreateTime"
               and r["headers"] == [{"key": "h", "value": "v"}] and r["timestamp"] > 0
               for r in lines)
    chosen = cli("topic", "consume", "j", "-p", "2", "-p", "0", "-e", "-f", "%p:%s\\n")
    assert chosen.out == "0:value0\n2:value2\n"
    committed = cli("topic", "consume", "j", "-e", "--isolation", "read_committed")
    assert committed.out == "value0\nvalue1\nvalue2\n"  # default format: the value


def test_consume_binary_values_in_json(zoolog_kafka: KafkaServerThread, cli: Cli) -> None:
    producer = ck.Producer({"bootstrap.servers": zoolog_kafka.bootstrap})
    producer.produce("bin", value=b"\xff\xfe", key=b"\x80", headers=[("x", b"\xc3")])
    assert producer.flush(20) == 0
    (record,) = cli("topic", "consume", "bin", "-e", "--format", "json").json_lines()
    assert record["value"] == {"base64": "//4="} and record["key"] == {"base64": "gA=="}
    assert record["headers"] == [{"key": "x", "value": {"base64": "ww=="}}]


def test_consume_as_a_group_commits_and_resumes(cli: Cli) -> None:
    cli("topic", "create", "work", "-p", "2")
    cli("topic", "produce", "work", "-p", "0", stdin=b"".join(b"a%d\n" % i for i in range(6)))
    cli("topic", "produce", "work", "-p", "1", stdin=b"".join(b"b%d\n" % i for i in range(4)))
    first = cli("topic", "consume", "work", "-g", "team", "-c", "3", "-f", "%p@%o\\n")
    assert first.out == "0@0\n0@1\n0@2\n"
    doc = cli("group", "describe", "team", "--format", "json").json()
    assert doc["state"] == "Empty" and doc["members"] == []
    assert [(o["partition"], o["committed_offset"], o["lag"]) for o in doc["offsets"]] == \
        [(0, 3, 3), (1, 0, 4)]
    rest = cli("topic", "consume", "work", "-g", "team", "-e", "-f", "%p@%o\\n")
    assert rest.out.splitlines() == ["0@3", "0@4", "0@5", "1@0", "1@1", "1@2", "1@3"]
    assert cli("group", "describe", "team", "--format", "json").json()["total_lag"] == 0
    assert cli("topic", "consume", "work", "-g", "team", "-e").out == ""
    # -o wins over the committed offsets
    assert cli("topic", "consume", "work", "-g", "team", "-o", "-1", "-e",
               "-f", "%p@%o\\n").out == "0@5\n1@3\n"


# --- groups --------------------------------------------------------------------------------


def _confluent_consumer(server: KafkaServerThread, group: str, topic: str,
                        client_id: str) -> ck.Consumer:
    consumer = ck.Consumer({"bootstrap.servers": server.bootstrap, "group.id": group,
                            "client.id": client_id, "auto.offset.reset": "earliest",
                            "enable.auto.commit": False,
                            "partition.assignment.strategy": "range"})
    consumer.subscribe([topic])
    return consumer


def test_group_describe_lag_after_a_confluent_consumer_committed(
        cli: Cli, zoolog_kafka: KafkaServerThread) -> None:
    cli("topic", "create", "lagged", "-p", "2")
    cli("topic", "produce", "lagged", "-p", "0", stdin=b"".join(b"%d\n" % i for i in range(5)))
    cli("topic", "produce", "lagged", "-p", "1", stdin=b"".join(b"%d\n" % i for i in range(8)))
    consumer = _confluent_consumer(zoolog_kafka, "lag-group", "lagged", "lag-checker")
    try:
        got: list[ck.Message] = []
        wait_for(lambda: len(got) >= 13,
                 between=lambda: got.extend(m for m in [consumer.poll(0.2)]
                                            if m is not None and m.error() is None))
        consumer.commit(offsets=[ck.TopicPartition("lagged", 0, 3),
                                 ck.TopicPartition("lagged", 1, 8)], asynchronous=False)
        doc = cli("group", "describe", "lag-group", "--format", "json").json()
        assert doc["state"] == "Stable" and doc["protocol_type"] == "consumer"
        assert doc["protocol"] == "range"
        (member,) = doc["members"]
        assert member["client_id"] == "lag-checker"
        assert member["client_host"].endswith("127.0.0.1")
        assert member["assignment"] == {"lagged": [0, 1]}
        assert member["subscription"] == ["lagged"]
        assert [(o["partition"], o["committed_offset"], o["log_end_offset"], o["lag"],
                 o["member_id"]) for o in doc["offsets"]] == \
            [(0, 3, 5, 2, member["member_id"]), (1, 8, 8, 0, member["member_id"])]
        assert doc["total_lag"] == 2
        text = cli("group", "describe", "lag-group").out.splitlines()
        assert text[0] == "GROUP        lag-group"
        assert text[2:6] == ["STATE        Stable", "PROTOCOL     consumer/range",
                             "MEMBERS      1", "TOTAL-LAG    2"]
        assert text[7].split() == ["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"]
        assert text[8].split()[1:] == ["lag-checker", member["client_host"], "lagged[0,1]"]
        assert text[10].split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET",
                                    "LAG", "MEMBER-ID", "HOST", "CLIENT-ID"]
        assert text[11].split() == ["lagged", "0", "3", "5", "2", member["member_id"],
                                    member["client_host"], "lag-checker"]
        assert text[12].split()[:5] == ["lagged", "1", "8", "8", "0"]
        assert cli("group", "list", "--format", "json").json() == [
            {"group": "lag-group", "state": "Stable", "protocol_type": "consumer"}]
        # no seeking while a member is there (kafka-consumer-groups.sh refuses too)
        refused = cli("group", "seek", "lag-group", "--topic", "lagged", "--to-earliest")
        assert refused.code == 1 and "inactive" in refused.err and "Stable" in refused.err
        busy = cli("group", "delete", "lag-group")
        assert busy.code == 1 and "NON_EMPTY_GROUP (error code 68)" in busy.err
    finally:
        consumer.close()
    after = cli("group", "describe", "lag-group", "--format", "json").json()
    assert after["state"] == "Empty" and after["members"] == []
    assert [o["lag"] for o in after["offsets"]] == [2, 0]
    assert cli("group", "list").out.splitlines() == ["GROUP      STATE  PROTOCOL-TYPE",
                                                     "lag-group  Empty  consumer"]


def test_group_seek_then_consume_again(cli: Cli, zoolog_kafka: KafkaServerThread) -> None:
    cli("topic", "create", "replay", "-p", "2")
    base = 1_700_000_000_000
    produce_with_timestamps(zoolog_kafka, "replay", base, 6)  # all on partition 0
    cli("topic", "produce", "replay", "-p", "1", "-m", "x", "-m", "y")
    assert cli("topic", "consume", "replay", "-g", "re", "-e").out.count("\n") == 8
    assert cli("group", "describe", "re", "--format", "json").json()["total_lag"] == 0

    earliest = cli("group", "seek", "re", "--topic", "replay", "--to-earliest")
    assert earliest.code == 0
    assert [line.split() for line in earliest.out.splitlines()] == [
        ["TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"],
        ["replay", "0", "6", "0"], ["replay", "1", "2", "0"]]
    assert cli("topic", "consume", "replay", "-g", "re", "-e", "-f", "%p@%o\\n"
               ).out.splitlines() == ["0@0", "0@1", "0@2", "0@3", "0@4", "0@5", "1@0", "1@1"]

    doc = cli("group", "seek", "re", "--topic", "replay", "-p", "0",
              "--to-timestamp", str(base + 3500), "--format", "json").json()
    assert doc == {"group": "re", "dry_run": False, "offsets": [
        {"topic": "replay", "partition": 0, "previous_offset": 6, "new_offset": 4}]}
    assert cli("topic", "consume", "replay", "-g", "re", "-e", "-f", "%p@%o\\n").out == \
        "0@4\n0@5\n"
    clamped = cli("group", "seek", "re", "--topic", "replay", "--to-offset", "99",
                  "--format", "json").json()
    assert [o["new_offset"] for o in clamped["offsets"]] == [6, 2]  # clamped to the end
    cli("group", "seek", "re", "--topic", "replay", "--to-offset", "1", "-p", "1")
    dry = cli("group", "seek", "re", "--topic", "replay", "--to-earliest", "--dry-run")
    assert dry.out.splitlines()[-1] == "(dry run: nothing committed)"
    assert cli("topic", "consume", "replay", "-g", "re", "-e").out == "y\n"
    latest = cli("group", "seek", "re", "--topic", "replay", "--to-latest", "--format",
                 "json").json()
    assert [o["new_offset"] for o in latest["offsets"]] == [6, 2]
    # a group that does not exist yet can be given offsets before its first consumer
    fresh = cli("group", "seek", "newcomer", "--topic", "replay", "--to-offset", "5",
                "-p", "0")
    assert fresh.code == 0
    assert cli("topic", "consume", "replay", "-g", "newcomer", "-c", "1").out == "v5\n"
    assert cli("group", "seek", "re", "--topic", "nope", "--to-latest").code == 1

    deleted = cli("group", "delete", "re", "newcomer")
    assert deleted == (0, "Deleted group re\nDeleted group newcomer\n", "")
    missing = cli("group", "delete", "re", "--format", "json")
    assert missing.code == 1
    assert missing.json() == [{"group": "re", "error": "GROUP_ID_NOT_FOUND",
                               "error_code": 69}]
    assert "GROUP_ID_NOT_FOUND (error code 69)" in missing.err
    assert cli("group", "describe", "re", "--format", "json").json()["state"] == "Dead"


# --- through a real `python -m zoolog` -------------------------------------------------------


def test_subprocess_produce_then_consume(zoolog_kafka: KafkaServerThread) -> None:
    created = zoolog_process(zoolog_kafka, "topic", "create", "sub", "-p", "2")
    assert created.returncode == 0, created.stderr
    produced = zoolog_process(zoolog_kafka, "topic", "produce", "sub", "-K", ":",
                              "--format", "json", stdin=b"a:1\nb:2\nc:3\n")
    assert produced.returncode == 0, produced.stderr
    landed = [json.loads(line) for line in produced.stdout.splitlines()]
    assert [r["topic"] for r in landed] == ["sub"] * 3
    consumed = zoolog_process(zoolog_kafka, "topic", "consume", "sub", "-e",
                              "-f", "%k=%s@%p/%o\\n")
    assert consumed.returncode == 0, consumed.stderr
    expected = {f"{k}={v}@{r['partition']}/{r['offset']}"
                for (k, v), r in zip([("a", 1), ("b", 2), ("c", 3)], landed, strict=True)}
    assert set(consumed.stdout.decode().splitlines()) == expected
    # kcat reads what `zoolog topic produce` wrote, keys included
    assert set(kcat(zoolog_kafka, "-C", "-t", "sub", "-e", "-o", "beginning",
                    "-f", "%k=%s\\n").decode().splitlines()) == {"a=1", "b=2", "c=3"}
    missing = zoolog_process(zoolog_kafka, "topic", "consume", "nope", "-e")
    assert missing.returncode == 1
    assert missing.stderr.decode().startswith(
        "zoolog topic consume: UNKNOWN_TOPIC_OR_PARTITION (error code 3)")
    usage = zoolog_process(zoolog_kafka, "group", "seek", "g")
    assert usage.returncode == 2
    head = subprocess.run(f"{sys.executable} -m zoolog topic consume sub -e | head -1",
                          shell=True, capture_output=True, timeout=60,
                          env=dict(os.environ, ZOOLOG_BROKERS=zoolog_kafka.bootstrap),
                          check=False)
    assert head.stdout.count(b"\n") == 1 and head.stderr == b""


def test_subprocess_group_member_shares_partitions_with_a_confluent_consumer(
        zoolog_kafka: KafkaServerThread, cli: Cli) -> None:
    cli("topic", "create", "shared", "-p", "4")
    for p in range(4):
        cli("topic", "produce", "shared", "-p", str(p), "-m", f"first-{p}")
    env = dict(os.environ, ZOOLOG_BROKERS=zoolog_kafka.bootstrap)
    member = subprocess.Popen([sys.executable, "-m", "zoolog", "topic", "consume", "shared",
                               "-g", "pair", "-f", "%p@%o %s\\n"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(
        line.decode().rstrip("\n") for line in iter(member.stdout.readline, b"")),  # type: ignore[union-attr]
        daemon=True)
    reader.start()
    consumer: ck.Consumer | None = None
    try:
        wait_for(lambda: len(lines) >= 4)
        assert sorted(lines) == [f"{p}@0 first-{p}" for p in range(4)]

        def describe() -> dict[str, Any]:
            result = cli("group", "describe", "pair", "--format", "json")
            assert result.code == 0, result
            return result.json()  # type: ignore[no-any-return]
        wait_for(lambda: describe()["total_lag"] == 0)  # it committed what it printed
        consumer = _confluent_consumer(zoolog_kafka, "pair", "shared", "ck-member")
        polled = consumer

        def two_members() -> bool:
            doc = describe()
            return doc["state"] == "Stable" and len(doc["members"]) == 2 and all(
                m["assignment"] for m in doc["members"])
        wait_for(two_members, timeout_s=60, between=lambda: polled.poll(0.2))
        doc = describe()
        assignments = {m["client_id"]: m["assignment"]["shared"] for m in doc["members"]}
        assert sorted(assignments) == ["ck-member", "zoolog-cli"]
        assert sorted(assignments["ck-member"] + assignments["zoolog-cli"]) == [0, 1, 2, 3]
        assert len(assignments["zoolog-cli"]) == 2  # range: two each
        # records produced now go to whichever member owns their partition
        for p in assignments["zoolog-cli"]:
            cli("topic", "produce", "shared", "-p", str(p), "-m", f"second-{p}")
        wait_for(lambda: len(lines) >= 6, between=lambda: polled.poll(0.2))
        assert sorted(lines[4:]) == [f"{p}@1 second-{p}" for p in assignments["zoolog-cli"]]
    finally:
        member.send_signal(signal.SIGINT)  # leaves the group on the way out
        try:
            code = member.wait(30)
        finally:
            if member.poll() is None:
                member.kill()
            reader.join(10)
            if consumer is not None:
                consumer.close()
        assert member.stderr is not None
        stderr = member.stderr.read()
        member.stdout.close()  # type: ignore[union-attr]
        member.stderr.close()
    assert code == 130, stderr
    left = cli("group", "describe", "pair", "--format", "json").json()
    assert left["state"] == "Empty"
    assert {(o["partition"], o["committed_offset"]) for o in left["offsets"]
            if o["partition"] in assignments["zoolog-cli"]} == \
        {(p, 2) for p in assignments["zoolog-cli"]}


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    before = {t.ident for t in threading.enumerate()}
    yield
    leftovers = [t for t in threading.enumerate()
                 if t.ident not in before and t.name == "zoolog-stdin" and t.is_alive()]
    for thread in leftovers:
        thread.join(5)
    assert not [t for t in leftovers if t.is_alive()]
