"""Batches and checks shared by the log store tests."""

from __future__ import annotations

from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.partition_log import PartitionLog
from zoolog.protocol.kafka.record_batch import (
    BatchHeader,
    Codec,
    Record,
    build_batch,
    compute_crc,
    iter_batches,
    read_header,
)


def batch(records: int = 1, *, value_bytes: int = 10, timestamp: int = 1000,
          key: bytes | None = None, codec: int = Codec.NONE, producer_id: int = -1,
          value: bytes | None = b"", keys: list[bytes | None] | None = None,
          values: list[bytes | None] | None = None, transactional: bool = False) -> bytes:
    """A client batch (base offset 0) of `records` records, timestamps `timestamp`+i."""
    out = []
    for i in range(records):
        k = keys[i] if keys is not None else key
        if values is not None:
            v = values[i]
        else:
            v = (value or b"") + bytes([i % 256]) * max(0, value_bytes - len(value or b""))
        out.append(Record(i, i, k, v))
    return build_batch(out, base_timestamp=timestamp, codec=codec, producer_id=producer_id,
                       producer_epoch=0 if producer_id >= 0 else -1,
                       base_sequence=0 if producer_id >= 0 else -1,
                       transactional=transactional)


def prepared(*raw: bytes) -> list[tuple[memoryview, BatchHeader]]:
    return [(memoryview(b), read_header(b)) for b in raw]


def log_batches(data: bytes) -> list[BatchHeader]:
    """The headers of the whole batches in `data`, checking each CRC."""
    out = []
    total = 0
    for pos, header in iter_batches(data):
        assert compute_crc(data, pos, header.size) == header.crc
        out.append(header)
        total += header.size
    assert total == len(data), "reads return whole batches only"
    return out


def all_headers(log: PartitionLog) -> list[BatchHeader]:
    return list(log.headers_from(log.log_start_offset))


def small(**overrides: object) -> LogConfig:
    values: dict[str, object] = {"segment_bytes": 4096, "index_interval_bytes": 256}
    values.update(overrides)
    return LogConfig(**values)  # type: ignore[arg-type]
