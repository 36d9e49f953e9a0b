"""A Hypothesis stateful test of producers, transactions and read_committed consumers
against a simple model.

Producers append transactional batches to two partitions (and plain records among them),
end their transactions with COMMIT or ABORT markers on every partition they touched (what
the coordinator's WriteMarkers does), and the broker is restarted cleanly, crashed after
its logs (not their `.txnindex` files) reached the disk, or has an index file deleted. A
consumer reads each partition from the start at isolation level read_committed through
`FetchOperation` and drops aborted records exactly as Kafka clients do, from the
response's `aborted_transactions`.

The model: per partition the records in append order, each plain or of a transaction that
is open, committed or aborted. A read_committed consumer must see exactly the plain and
committed records before the first record of a still-open transaction (the last stable
offset), in order, and nothing else; read_uncommitted sees every record.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tests.broker.helpers import (
    START_MS,
    append,
    flush,
    new_broker,
    slice_bytes,
    topic_info,
)

from zoolog.broker.broker import Broker
from zoolog.broker.fetch import FetchOperation
from zoolog.logstore.files import FileSlice
from zoolog.protocol.kafka._generated.fetch import FetchRequest
from zoolog.protocol.kafka.record_batch import (
    CONTROL_ABORT,
    Record,
    batch_records,
    build_batch,
    control_type,
    iter_batches,
)
from zoolog.testing.log_files import MemoryLogFileSystem

PARTITIONS = 2
PRODUCERS = (11, 12, 13)
CONFIGS = {"segment.bytes": "500"}


@dataclass
class Txn:
    status: str = "open"  # open | committed | aborted


@dataclass
class Producer:
    epoch: int = 0
    sequence: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(PARTITIONS), 0))
    txn: Txn | None = None
    touched: set[int] = field(default_factory=set)


def txn_batch(pid: int, epoch: int, seq: int, values: list[bytes]) -> bytes:
    return build_batch([Record(i, i, b"k", v) for i, v in enumerate(values)],
                       base_timestamp=START_MS, producer_id=pid, producer_epoch=epoch,
                       base_sequence=seq, transactional=True)


class TransactionsModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fs = MemoryLogFileSystem()
        self.broker = self._open()
        self.producers = {pid: Producer() for pid in PRODUCERS}
        self.log: dict[int, list[tuple[bytes, Txn | None, int]]] = {
            p: [] for p in range(PARTITIONS)}
        """partition -> (value, its transaction or None, its offset) in append order."""
        self.counter = 0

    def _open(self) -> Broker:
        return new_broker(topic_info("t", PARTITIONS, configs=CONFIGS), fs=self.fs)

    def _values(self, n: int) -> list[bytes]:
        out = []
        for _ in range(n):
            self.counter += 1
            out.append(b"v%05d" % self.counter)
        return out

    # --- producers ------------------------------------------------------------------------

    @rule(pid=st.sampled_from(PRODUCERS), partition=st.integers(0, PARTITIONS - 1),
          n=st.integers(1, 4))
    def produce_in_transaction(self, pid: int, partition: int, n: int) -> None:
        producer = self.producers[pid]
        if producer.txn is None:
            producer.txn = Txn()
            producer.touched = set()
        values = self._values(n)
        base = append(self.broker, "t", txn_batch(pid, producer.epoch,
                                                  producer.sequence[partition], values),
                      partition=partition).base_offset
        producer.sequence[partition] += n
        producer.touched.add(partition)
        self.log[partition] += [(v, producer.txn, base + i) for i, v in enumerate(values)]

    @rule(partition=st.integers(0, PARTITIONS - 1), n=st.integers(1, 3))
    def produce_plain(self, partition: int, n: int) -> None:
        values = self._values(n)
        base = append(self.broker, "t", build_batch([Record(i, i, b"k", v)
                                                     for i, v in enumerate(values)],
                                                    base_timestamp=START_MS),
                      partition=partition).base_offset
        self.log[partition] += [(v, None, base + i) for i, v in enumerate(values)]

    @rule(pid=st.sampled_from(PRODUCERS), commit=st.booleans(), bump=st.booleans())
    def end_transaction(self, pid: int, commit: bool, bump: bool) -> None:
        producer = self.producers[pid]
        if producer.txn is None:
            return
        if bump and not commit:  # the coordinator's timeout abort fences the producer
            producer.epoch += 1
            producer.sequence = dict.fromkeys(range(PARTITIONS), 0)
        for partition in sorted(producer.touched):
            self.broker.partition("t", partition).write_marker(
                pid, producer.epoch, 0, commit=commit, now_ms=START_MS)
        producer.txn.status = "committed" if commit else "aborted"
        producer.txn = None

    # --- the broker -----------------------------------------------------------------------

    @rule()
    def restart_cleanly(self) -> None:
        self.broker.close()
        self.broker = self._open()

    @rule()
    def crash_after_the_logs_reached_the_disk(self) -> None:
        for partition in self.broker.partitions.values():
            for segment in partition.log.segments:
                self.fs.fsync(segment.log_path)
                self.fs.fsync(segment.index.path)
                self.fs.fsync(segment.time_index.path)
            self.fs.fsync_dir(partition.dir)
        self.fs.crash()
        self.broker = self._open()

    @precondition(lambda self: any(e for p in self.broker.partitions.values()
                                   for s in p.log.segments for e in s.txn_index.entries))
    @rule(data=st.data())
    def lose_an_index_file(self, data: st.DataObject) -> None:
        candidates = [(p, s) for p in self.broker.partitions.values()
                      for s in p.log.segments if s.txn_index.entries]
        partition, segment = data.draw(st.sampled_from(candidates))
        flush(partition)
        self.broker.close()
        self.fs.remove(segment.txn_index.path)
        self.broker = self._open()

    # --- what a consumer sees --------------------------------------------------------------

    def _expected(self, partition: int) -> list[bytes]:
        out = []
        for value, txn, _ in self.log[partition]:
            if txn is not None and txn.status == "open":
                break  # the last stable offset
            if txn is None or txn.status == "committed":
                out.append(value)
        return out

    def _read(self, partition: int, read_committed: bool) -> list[bytes]:
        offset = 0
        batches: list[tuple[memoryview, int, int, bool, bool, int]] = []
        aborted: list[tuple[int, int]] = []
        while True:
            request = FetchRequest(max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
                                   isolation_level=1 if read_committed else 0,
                                   topics=[FetchRequest.FetchTopic(topic="t", partitions=[
                                       FetchRequest.FetchPartition(
                                           partition=partition, fetch_offset=offset,
                                           partition_max_bytes=1 << 20)])])
            response = FetchOperation(self.broker, request, 11, START_MS).evaluate(START_MS)
            assert response is not None
            data = response.responses[0].partitions[0]
            assert data.error_code == 0
            if read_committed:
                aborted += [(a.first_offset, a.producer_id) for a in data.aborted_transactions]
            else:
                assert data.aborted_transactions is None
            records = data.records
            if not isinstance(records, FileSlice) or records.size == 0:
                break
            raw = slice_bytes(self.broker, records)
            for position, header in iter_batches(raw):
                view = memoryview(raw)[position : position + header.size]
                batches.append((view, header.base_offset, header.last_offset,
                                header.is_control, header.is_transactional,
                                header.producer_id))
                offset = header.next_offset
        # a Kafka client's filter (FetchCollector / librdkafka): an aborted transaction of
        # a producer starts at its first offset and ends at that producer's ABORT marker
        heap = sorted(set(aborted))
        heapq.heapify(heap)
        aborting: set[int] = set()
        out: list[bytes] = []
        for view, _base, last, is_control, is_txn, pid in batches:
            while heap and heap[0][0] <= last:
                aborting.add(heapq.heappop(heap)[1])
            records = batch_records(view, 1 << 20)
            if is_control:
                if pid in aborting and control_type(records[0]) == CONTROL_ABORT:
                    aborting.discard(pid)
                continue
            if read_committed and is_txn and pid in aborting:
                continue
            out += [r.value for r in records if r.value is not None]
        return out

    @invariant()
    def read_committed_sees_exactly_the_committed_records(self) -> None:
        for partition in range(PARTITIONS):
            assert self._read(partition, True) == self._expected(partition)

    @invariant()
    def read_uncommitted_sees_everything(self) -> None:
        for partition in range(PARTITIONS):
            assert self._read(partition, False) == [v for v, _, _ in self.log[partition]]

    @invariant()
    def the_lso_is_the_first_open_record(self) -> None:
        for partition in range(PARTITIONS):
            p = self.broker.partition("t", partition)
            first_open = next((offset for _, txn, offset in self.log[partition]
                               if txn is not None and txn.status == "open"), None)
            expected = p.high_watermark if first_open is None else first_open
            assert p.last_stable_offset == expected

    def teardown(self) -> None:
        self.broker.close()


TransactionsModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30,
                                               deadline=None)
test_transactions_model = TransactionsModel.TestCase

