"""Reading a coordinator's internal partition back at start (`__consumer_offsets`,
`__transaction_state`) and writing its records: the runtime side shared by the group and
transaction coordinators.

`records_of` yields every keyed record in log order; with `transactional=True`, records of
transactional batches come as `TxnRecord` and COMMIT/ABORT markers as `TxnMarker` (what
`GroupCoordinator.load` needs to keep a transaction's offsets pending until its marker).
Never: decisions about what the records mean (the coordinators').
"""

from __future__ import annotations

from collections.abc import Iterator

from zoolog.broker.groups.outputs import TxnMarker, TxnRecord
from zoolog.broker.partition import Partition
from zoolog.protocol.kafka import record_batch as rb

LoadItem = tuple[bytes, bytes | None] | TxnRecord | TxnMarker


def records_of(partition: Partition, transactional: bool = False) -> Iterator[LoadItem]:
    """Every record stored in `partition` from its log start to its end, in log order."""
    offset = partition.log_start_offset
    end = partition.log_end_offset
    while offset < end:
        result = partition.log.read(offset, 1 << 20, end, True)
        if not result.slices:
            break
        for piece in result.slices:
            data = partition.fs.read(piece.path, piece.position, piece.size)
            for pos, header in rb.iter_batches(data):
                if header.last_offset < offset:
                    continue
                batch = memoryview(data)[pos : pos + header.size]
                offset = header.next_offset
                records = rb.batch_records(batch, 256 << 20)
                if header.is_control:
                    if transactional and records:
                        kind = rb.control_type(records[0])
                        if kind is not None:
                            yield TxnMarker(header.producer_id, kind == rb.CONTROL_COMMIT)
                    continue
                in_txn = transactional and header.is_transactional
                for record in records:
                    if record.key is None:
                        continue
                    if in_txn:
                        yield TxnRecord(record.key, record.value, header.producer_id)
                    else:
                        yield record.key, record.value


def coordinator_batch(records: list[tuple[bytes, bytes | None]], now_ms: int,
                      producer_id: int = -1, producer_epoch: int = -1) -> bytes:
    """One batch of a coordinator's records; with a producer id, a transactional batch of
    that producer (TxnOffsetCommit's offsets; no sequence, as Kafka writes them)."""
    built = [rb.Record(i, 0, key, value) for i, (key, value) in enumerate(records)]
    if producer_id < 0:
        return rb.build_batch(built, base_timestamp=now_ms)
    return rb.build_batch(built, base_timestamp=now_ms, producer_id=producer_id,
                          producer_epoch=producer_epoch, transactional=True)
