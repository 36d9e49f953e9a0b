"""Idempotent appends through `Partition.append_client` on a real `PartitionLog` over the
in-memory file system, and the producer state surviving crashes and restarts.

A crash of `MemoryLogFileSystem` keeps only what was fsynced (the flush is what
`server.kafka_flusher` does: `flush_plan()`, `run`, `mark_flushed`); a reopen rebuilds the
producer state from the newest usable `.snapshot` plus the log after it, or from the whole
log when the snapshot is missing or damaged. A retry after the restart must still be found.
"""

from __future__ import annotations

import random

import pytest
from tests.broker.helpers import (
    START_MS,
    append,
    client_batch,
    flush,
    new_broker,
    topic_info,
)

from zoolog.broker.broker import Broker
from zoolog.broker.partition import SNAPSHOT_SUFFIX, Partition
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.protocol.kafka.record_batch import iter_batches
from zoolog.testing.log_files import MemoryLogFileSystem

PID = 4000
SMALL_SEGMENTS = {"segment.bytes": "300"}
"""Each batch below (3 records of 100 bytes) is bigger: every append after the first rolls
the segment, and a roll snapshots the producer state."""


def idem(seq: int, count: int = 3, *, epoch: int = 0, pid: int = PID) -> bytes:
    return client_batch(count, producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                        value_bytes=100)


def stored_batches(partition: Partition) -> list[tuple[int, int, int]]:
    """(base offset, base sequence, records) of each batch in the log."""
    data = partition.log.read_bytes(partition.log_start_offset, 1 << 30)
    return [(h.base_offset, h.base_sequence, h.records_count) for _, h in iter_batches(data)]


def snapshots(fs: MemoryLogFileSystem, partition_dir: str = "t-0") -> list[str]:
    return [n for n in fs.list(partition_dir) if n.endswith(SNAPSHOT_SUFFIX)]


def restart(fs: MemoryLogFileSystem, configs: dict[str, str] | None = None,
            now_ms: int = START_MS + 60_000) -> tuple[Broker, Partition]:
    broker = new_broker(topic_info("t", configs=configs), fs=fs, now_ms=now_ms)
    return broker, broker.partition("t", 0)


def assert_code(code: int, broker: Broker, raw: bytes) -> None:
    with pytest.raises(KafkaError) as caught:
        append(broker, "t", raw)
    assert caught.value.code == code, caught.value


# --- within one run ---------------------------------------------------------------------------


def test_a_retried_batch_is_not_appended_twice() -> None:
    broker = new_broker(topic_info("t"))
    partition = broker.partition("t", 0)
    first = append(broker, "t", idem(0))
    second = append(broker, "t", idem(3, 2))
    assert (first.base_offset, first.last_offset, first.duplicate) == (0, 2, False)
    assert (second.base_offset, second.last_offset) == (3, 4)
    retry = append(broker, "t", idem(0))
    assert retry.duplicate
    assert (retry.base_offset, retry.last_offset) == (0, 2)
    retry = append(broker, "t", idem(3, 2))
    assert retry.duplicate and (retry.base_offset, retry.last_offset) == (3, 4)
    assert partition.log_end_offset == 5
    assert stored_batches(partition) == [(0, 0, 3), (3, 3, 2)]


def test_each_of_the_last_five_batches_is_a_duplicate_and_older_ones_are_out_of_order() -> None:
    broker = new_broker(topic_info("t"))
    for i in range(7):
        assert append(broker, "t", idem(i, 1)).base_offset == i
    for i in range(2, 7):
        retry = append(broker, "t", idem(i, 1))
        assert retry.duplicate and retry.base_offset == i
    for i in range(2):
        assert_code(Err.OUT_OF_ORDER_SEQUENCE_NUMBER, broker, idem(i, 1))
    assert broker.partition("t", 0).log_end_offset == 7


def test_sequence_and_epoch_errors_append_nothing() -> None:
    broker = new_broker(topic_info("t"))
    append(broker, "t", idem(0))
    assert_code(Err.OUT_OF_ORDER_SEQUENCE_NUMBER, broker, idem(4))  # gap
    assert_code(Err.OUT_OF_ORDER_SEQUENCE_NUMBER, broker, idem(5, epoch=1))  # new epoch not at 0
    append(broker, "t", idem(0, epoch=1))
    assert_code(Err.INVALID_PRODUCER_EPOCH, broker, idem(3, epoch=0))
    assert stored_batches(broker.partition("t", 0)) == [(0, 0, 3), (3, 0, 3)]


def test_producers_do_not_interfere() -> None:
    broker = new_broker(topic_info("t"))
    append(broker, "t", idem(0, pid=1))
    append(broker, "t", idem(0, pid=2))
    assert append(broker, "t", idem(0, pid=1)).base_offset == 0
    assert append(broker, "t", idem(0, pid=2)).base_offset == 3
    assert append(broker, "t", idem(3, pid=1)).base_offset == 6


def test_duplicate_answers_the_original_log_append_time() -> None:
    """COMPAT-KAFKA §3: a duplicate is answered with the *original* base offset and
    logAppendTime (UnifiedLog: `appendInfo.setLogAppendTime(duplicate.timestamp)`)."""
    broker = new_broker(topic_info("t", configs={"message.timestamp.type": "LogAppendTime"}))
    first = append(broker, "t", idem(0), now_ms=START_MS + 1000)
    assert first.log_append_time_ms == START_MS + 1000
    retry = append(broker, "t", idem(0), now_ms=START_MS + 9000)
    assert retry.duplicate and retry.base_offset == 0
    assert retry.log_append_time_ms == START_MS + 1000


# --- across crashes and restarts -------------------------------------------------------------


def _produce_and_crash(configs: dict[str, str] | None) -> tuple[MemoryLogFileSystem, int]:
    """Six batches of 3 records (offsets 0..17, producer epoch 1), flushed, then a crash.
    Returns the fs and how many batches the log holds."""
    broker = new_broker(topic_info("t", configs=configs))
    partition = broker.partition("t", 0)
    for i in range(6):
        assert append(broker, "t", idem(3 * i, epoch=1)).base_offset == 3 * i
    flush(partition)
    fs = broker.fs
    assert isinstance(fs, MemoryLogFileSystem)
    fs.crash()
    return fs, 6


def _check_after_restart(broker: Broker, partition: Partition) -> None:
    assert partition.log_end_offset == 18
    # every one of the last five batches is still known
    for i in range(1, 6):
        retry = append(broker, "t", idem(3 * i, epoch=1))
        assert retry.duplicate, f"batch {i} appended again after the restart"
        assert (retry.base_offset, retry.last_offset) == (3 * i, 3 * i + 2)
    assert partition.log_end_offset == 18
    assert_code(Err.OUT_OF_ORDER_SEQUENCE_NUMBER, broker, idem(19, epoch=1))
    assert_code(Err.INVALID_PRODUCER_EPOCH, broker, idem(18, epoch=0))
    nxt = append(broker, "t", idem(18, epoch=1))
    assert not nxt.duplicate and nxt.base_offset == 18


def test_retry_after_a_crash_without_snapshot_replays_the_log() -> None:
    fs, batches = _produce_and_crash(None)
    assert snapshots(fs) == []  # no roll, no clean shutdown: nothing but the log
    broker, partition = restart(fs)
    assert partition.replayed_batches == batches
    _check_after_restart(broker, partition)


def test_retry_after_a_crash_uses_the_snapshot_and_the_log_after_it() -> None:
    fs, batches = _produce_and_crash(SMALL_SEGMENTS)
    assert snapshots(fs), "segment rolls should have written producer snapshots"
    broker, partition = restart(fs, SMALL_SEGMENTS)
    assert partition.replayed_batches < batches
    _check_after_restart(broker, partition)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage"])
def test_a_damaged_snapshot_falls_back_to_replaying_the_log(damage: str) -> None:
    fs, batches = _produce_and_crash(SMALL_SEGMENTS)
    for name in snapshots(fs):
        path = f"t-0/{name}"
        data = fs.read(path, 0, fs.size(path))
        if damage == "flip":
            fs.corrupt(path, len(data) // 2)
            continue
        damaged = {"truncate": data[: len(data) - 3], "empty": b"",
                   "garbage": bytes(range(256)) * 2}[damage]
        fs.write_atomic(path, damaged)
    broker, partition = restart(fs, SMALL_SEGMENTS)
    assert partition.replayed_batches == batches
    _check_after_restart(broker, partition)
    assert all(fs.read(f"t-0/{n}", 0, 4) != b"" for n in snapshots(fs))


def test_only_the_newest_snapshot_damaged_falls_back_to_an_older_one() -> None:
    fs, batches = _produce_and_crash(SMALL_SEGMENTS)
    names = snapshots(fs)
    assert len(names) >= 2
    fs.corrupt(f"t-0/{names[-1]}", 3)
    broker, partition = restart(fs, SMALL_SEGMENTS)
    assert 0 < partition.replayed_batches < batches
    _check_after_restart(broker, partition)


def test_a_missing_snapshot_falls_back_to_replaying_the_log() -> None:
    fs, batches = _produce_and_crash(SMALL_SEGMENTS)
    for name in snapshots(fs):
        fs.remove(f"t-0/{name}")
    fs.fsync_dir("t-0")
    broker, partition = restart(fs, SMALL_SEGMENTS)
    assert partition.replayed_batches == batches
    _check_after_restart(broker, partition)


@pytest.mark.parametrize("configs", [None, SMALL_SEGMENTS], ids=["one-segment", "rolling"])
def test_a_batch_lost_in_the_crash_is_appended_again(configs: dict[str, str] | None) -> None:
    """The last batch was acknowledged (acks=1) but never fsynced: after the crash it is
    gone, and so must be its producer state (a snapshot written at the roll it caused
    covers offsets the log lost): its retry is appended, at the same offset."""
    broker = new_broker(topic_info("t", configs=configs))
    partition = broker.partition("t", 0)
    for i in range(3):
        append(broker, "t", idem(3 * i))
    flush(partition)
    lost = append(broker, "t", idem(9))
    assert lost.base_offset == 9
    fs = broker.fs
    assert isinstance(fs, MemoryLogFileSystem)
    fs.crash()
    broker, partition = restart(fs, configs)
    assert partition.log_end_offset == 9
    again = append(broker, "t", idem(9))
    assert not again.duplicate and again.base_offset == 9
    assert append(broker, "t", idem(9)).duplicate
    assert stored_batches(partition)[-1] == (9, 9, 3)


@pytest.mark.parametrize("seed", range(6))
def test_a_torn_tail_is_truncated_and_its_retry_appended(seed: int) -> None:
    broker = new_broker(topic_info("t", configs=SMALL_SEGMENTS))
    partition = broker.partition("t", 0)
    for i in range(4):
        append(broker, "t", idem(3 * i))
    flush(partition)
    append(broker, "t", idem(12))
    append(broker, "t", idem(15))
    fs = broker.fs
    assert isinstance(fs, MemoryLogFileSystem)
    fs.crash(random.Random(seed), tear=True)
    broker, partition = restart(fs, SMALL_SEGMENTS)
    end = partition.log_end_offset
    assert end in (12, 15, 18)
    # whatever survived is a duplicate, whatever did not is appended where it belongs
    for seq in (12, 15):
        result = append(broker, "t", idem(seq))
        assert result.base_offset == seq
        assert result.duplicate == (seq < end)
    assert [b[0] for b in stored_batches(partition)] == [0, 3, 6, 9, 12, 15]


def test_after_a_clean_shutdown_nothing_is_replayed() -> None:
    broker = new_broker(topic_info("t"))
    for i in range(3):
        append(broker, "t", idem(3 * i))
    broker.close()
    fs = broker.fs
    assert isinstance(fs, MemoryLogFileSystem)
    fs.crash()  # a clean close left everything durable
    broker, partition = restart(fs)
    assert partition.replayed_batches == 0
    assert append(broker, "t", idem(6)).duplicate
    assert append(broker, "t", idem(9)).base_offset == 9
