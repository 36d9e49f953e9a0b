"""Transactions on one partition: the last stable offset, COMMIT/ABORT markers, the
aborted-transaction index (`.txnindex`) and what read_committed fetches see, over the
in-memory file system, including crashes that lose or tear the index (it is rebuilt from
the log's markers) and produce-time verification against the coordinator.
"""

from __future__ import annotations

import pytest
from tests.broker.helpers import (
    START_MS,
    append,
    client_batch,
    flush,
    new_broker,
    slice_bytes,
    topic_info,
    wire,
)

from zoolog.broker import produce as produce_api
from zoolog.broker.broker import Broker
from zoolog.broker.fetch import FetchOperation
from zoolog.broker.partition import Partition
from zoolog.logstore.txn_index import AbortedTxn
from zoolog.protocol.kafka._generated.fetch import FetchRequest
from zoolog.protocol.kafka._generated.produce import ProduceRequest
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.protocol.kafka.record_batch import (
    CONTROL_ABORT,
    CONTROL_COMMIT,
    batch_records,
    control_type,
    iter_batches,
)
from zoolog.testing.log_files import MemoryLogFileSystem

SMALL_SEGMENTS = {"segment.bytes": "400"}


def txn(pid: int, seq: int, count: int = 2, epoch: int = 0) -> bytes:
    return client_batch(count, producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                        transactional=True, value_bytes=50)


def plain(count: int = 1) -> bytes:
    return client_batch(count, value_bytes=50)


def markers(partition: Partition) -> list[tuple[int, int, int]]:
    """(offset, producer id, control type) of every marker in the log."""
    data = partition.log.read_bytes(partition.log_start_offset, 1 << 30)
    out = []
    for position, header in iter_batches(data):
        if header.is_control:
            view = memoryview(data)[position : position + header.size]
            kind = control_type(batch_records(view, 1 << 20)[0])
            assert kind is not None
            out.append((header.base_offset, header.producer_id, kind))
    return out


def aborted_of(partition: Partition) -> list[AbortedTxn]:
    return [e for s in partition.log.segments for e in s.txn_index.entries]


def test_open_transactions_hold_the_lso_and_markers_release_it() -> None:
    broker = new_broker(topic_info("t"))
    p = broker.partition("t", 0)
    append(broker, "t", plain())                       # 0
    append(broker, "t", txn(7, 0))                     # 1-2 (pid 7 opens at 1)
    append(broker, "t", txn(8, 0))                     # 3-4 (pid 8 opens at 3)
    append(broker, "t", plain())                       # 5
    assert (p.high_watermark, p.last_stable_offset) == (6, 1)
    p.write_marker(7, 0, 0, commit=True, now_ms=START_MS)   # 6
    assert p.last_stable_offset == 3
    p.write_marker(8, 0, 0, commit=False, now_ms=START_MS)  # 7
    assert p.last_stable_offset == p.high_watermark == 8
    assert markers(p) == [(6, 7, CONTROL_COMMIT), (7, 8, CONTROL_ABORT)]
    assert aborted_of(p) == [AbortedTxn(8, 3, 7, 8)]


def test_read_committed_stops_at_the_lso_and_lists_overlapping_aborts() -> None:
    broker = new_broker(topic_info("t"))
    p = broker.partition("t", 0)
    append(broker, "t", txn(7, 0))                     # 0-1
    p.write_marker(7, 0, 0, commit=False, now_ms=START_MS)  # 2
    append(broker, "t", txn(7, 2))                     # 3-4 (open)
    committed = p.read(0, 1 << 20, read_committed=True)
    assert committed.last_stable_offset == 3
    assert committed.aborted == [AbortedTxn(7, 0, 2, 3)]
    data = slice_bytes(broker, committed.records)
    assert [h.base_offset for _, h in iter_batches(data)] == [0, 2]
    everything = p.read(0, 1 << 20, read_committed=False)
    assert everything.aborted is None
    assert [h.base_offset for _, h in iter_batches(slice_bytes(broker, everything.records))] \
        == [0, 2, 3]
    nothing_yet = p.read(3, 1 << 20, read_committed=True)
    assert nothing_yet.records is None and nothing_yet.aborted == []
    p.write_marker(7, 0, 0, commit=True, now_ms=START_MS)  # 5
    after = p.read(3, 1 << 20, read_committed=True)
    assert after.aborted == []  # the abort at 0-2 does not overlap [3, 6)
    assert [h.base_offset for _, h in iter_batches(slice_bytes(broker, after.records))] \
        == [3, 5]


def test_fetch_isolation_levels_fill_the_aborted_list() -> None:
    broker = new_broker(topic_info("t"))
    p = broker.partition("t", 0)
    append(broker, "t", txn(9, 0))
    p.write_marker(9, 0, 0, commit=False, now_ms=START_MS)
    for isolation, expected in ((1, [(9, 0)]), (0, None)):
        request = FetchRequest(max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                               isolation_level=isolation, topics=[FetchRequest.FetchTopic(
                                   topic="t", partitions=[FetchRequest.FetchPartition(
                                       partition=0, fetch_offset=0,
                                       partition_max_bytes=1 << 20)])])
        response = FetchOperation(broker, wire(request, 11), 11, START_MS).evaluate(START_MS)
        assert response is not None
        data = response.responses[0].partitions[0]
        got = (None if data.aborted_transactions is None
               else [(a.producer_id, a.first_offset) for a in data.aborted_transactions])
        assert got == expected
        assert data.last_stable_offset == 3


def test_markers_with_an_older_epoch_are_refused_and_a_bumped_one_fences() -> None:
    broker = new_broker(topic_info("t"))
    p = broker.partition("t", 0)
    append(broker, "t", txn(7, 0, epoch=3))
    with pytest.raises(KafkaError) as caught:
        p.write_marker(7, 2, 0, commit=True, now_ms=START_MS)
    assert caught.value.code == Err.INVALID_PRODUCER_EPOCH
    p.write_marker(7, 4, 0, commit=False, now_ms=START_MS)  # the coordinator's timeout abort
    assert aborted_of(p) == [AbortedTxn(7, 0, 2, 3)]
    with pytest.raises(KafkaError) as caught:  # the zombie's next write
        append(broker, "t", txn(7, 2, epoch=3))
    assert caught.value.code == Err.INVALID_PRODUCER_EPOCH


def test_a_marker_from_an_older_coordinator_epoch_is_fenced() -> None:
    broker = new_broker(topic_info("t"))
    p = broker.partition("t", 0)
    append(broker, "t", txn(7, 0))
    p.write_marker(7, 0, 5, commit=True, now_ms=START_MS)
    append(broker, "t", txn(7, 2))
    with pytest.raises(KafkaError) as caught:
        p.write_marker(7, 0, 4, commit=False, now_ms=START_MS)
    assert caught.value.code == Err.TRANSACTION_COORDINATOR_FENCED
    assert p.last_stable_offset == 3  # still open
    p.write_marker(7, 0, 5, commit=False, now_ms=START_MS)
    assert aborted_of(p) == [AbortedTxn(7, 3, 5, 6)]


def test_a_marker_without_data_changes_nothing() -> None:
    broker = new_broker(topic_info("t"))
    p = broker.partition("t", 0)
    append(broker, "t", txn(7, 0))
    p.write_marker(7, 0, 0, commit=False, now_ms=START_MS)
    p.write_marker(7, 0, 0, commit=False, now_ms=START_MS)  # written again after a restart
    p.write_marker(5, 0, 0, commit=True, now_ms=START_MS)   # a partition with no data of 5
    assert aborted_of(p) == [AbortedTxn(7, 0, 2, 3)]
    assert p.last_stable_offset == p.high_watermark == 5


def _scenario(broker: Broker) -> Partition:
    """Aborts and commits spread over several segments, one transaction left open."""
    p = broker.partition("t", 0)
    seq = {7: 0, 8: 0}
    for round_ in range(4):
        for pid in (7, 8):
            append(broker, "t", txn(pid, seq[pid]))
            seq[pid] += 2
        append(broker, "t", plain())
        p.write_marker(7, 0, 0, commit=round_ % 2 == 0, now_ms=START_MS)
        p.write_marker(8, 0, 0, commit=round_ % 2 == 1, now_ms=START_MS)
    append(broker, "t", txn(7, seq[7]))
    return p


def test_the_index_lives_beside_each_segment_and_survives_a_clean_restart() -> None:
    fs = MemoryLogFileSystem()
    broker = new_broker(topic_info("t", configs=SMALL_SEGMENTS), fs=fs)
    p = _scenario(broker)
    expected, lso = aborted_of(p), p.last_stable_offset
    assert len(expected) == 4 and len(p.log.segments) > 3
    assert any(name.endswith(".txnindex") for name in fs.list("t-0"))
    by_segment = [len(s.txn_index.entries) for s in p.log.segments]
    assert sum(1 for n in by_segment if n) >= 2
    broker.close()
    again = new_broker(topic_info("t", configs=SMALL_SEGMENTS), fs=fs)
    q = again.partition("t", 0)
    assert aborted_of(q) == expected
    assert q.last_stable_offset == lso
    assert q.log.aborted_between(0, q.log_end_offset) == expected


@pytest.mark.parametrize("damage", ["crash", "delete", "garbage", "torn"])
def test_the_index_is_rebuilt_from_the_markers(damage: str) -> None:
    fs = MemoryLogFileSystem()
    broker = new_broker(topic_info("t", configs=SMALL_SEGMENTS), fs=fs)
    p = _scenario(broker)
    append(broker, "t", txn(8, 8))
    p.write_marker(8, 0, 0, commit=False, now_ms=START_MS)  # after the last snapshot
    p.write_marker(7, 0, 0, commit=False, now_ms=START_MS)
    expected, lso, end = aborted_of(p), p.last_stable_offset, p.log_end_offset
    assert p.log.segments[-1].txn_index.dirty
    if damage == "crash":  # the log's files reach the disk, the unsynced index entries not
        for segment in p.log.segments:
            fs.fsync(segment.log_path)
        fs.fsync_dir("t-0")
        fs.crash()
    else:
        flush(p)
        broker.close()
        damaged = next(s for s in p.log.segments if s.txn_index.entries)
        path = damaged.txn_index.path
        if damage == "delete":
            fs.remove(path)
        elif damage == "garbage":
            fs.write_atomic(path, b"\xff" * 34)
        else:
            fs.append(path, (b"\0" * 20,))
    again = new_broker(topic_info("t", configs=SMALL_SEGMENTS), fs=fs)
    q = again.partition("t", 0)
    assert q.log_end_offset == end
    assert aborted_of(q) == expected
    assert q.last_stable_offset == lso
    if damage == "crash":
        assert 0 < q.replayed_batches < 10  # from the newest snapshot, not the log start


def test_produce_verifies_transactional_batches_with_the_coordinator() -> None:
    broker = new_broker(topic_info("t"))
    calls: list[tuple[str, int, int, str, int]] = []

    def verify(tid: str, pid: int, epoch: int, topic: str, index: int) -> tuple[int, str]:
        calls.append((tid, pid, epoch, topic, index))
        if epoch < 1:
            return Err.INVALID_PRODUCER_EPOCH, "fenced"
        return Err.NONE, ""

    def produce(raw: bytes, tid: str | None) -> int:
        request = ProduceRequest(transactional_id=tid, acks=-1, timeout_ms=1000, topic_data=[
            ProduceRequest.TopicProduceData(name="t", partition_data=[
                ProduceRequest.PartitionProduceData(index=0, records=raw)])])
        result = produce_api.produce(broker, wire(request, 9), 9, START_MS)
        return result.response.responses[0].partition_responses[0].error_code

    assert produce(txn(7, 0, epoch=1), "app") == Err.COORDINATOR_NOT_AVAILABLE
    broker.verify_txn = verify
    assert produce(txn(7, 0, epoch=1), "app") == Err.NONE
    assert produce(txn(7, 2, epoch=0), "app") == Err.INVALID_PRODUCER_EPOCH
    assert produce(txn(7, 2, epoch=1), None) == Err.INVALID_RECORD
    assert produce(plain(), "app") == Err.NONE  # non-transactional data is not verified
    assert calls == [("app", 7, 1, "t", 0), ("app", 7, 0, "t", 0)]
    assert broker.partition("t", 0).log_end_offset == 3
