"""Validation of produced record batches before they are appended (Kafka's `LogValidator`).

For each batch of a Produce request's partition, in Kafka's order:

1. framing: magic 2, a length that fits, CRC-32C (CORRUPT_MESSAGE; other magics
   UNSUPPORTED_FOR_MESSAGE_FORMAT) — `record_batch.split_batches`;
2. size: a batch larger than the topic's `max.message.bytes` -> MESSAGE_TOO_LARGE;
3. shape: one batch per partition and request (Kafka's rule for magic 2); clients may not
   write control batches; `records_count` must equal `last_offset_delta + 1`; a producer id
   needs a sequence; a transactional batch needs a producer id (INVALID_RECORD);
4. records, only where a check needs them: compressed batches are decompressed (bounded by
   `decompressed_bytes_max`) and their records decoded and counted; compacted topics need a
   key on every record (INVALID_RECORD with the batch index in `record_errors`); timestamps
   outside `message.timestamp.before/after.max.ms` of now -> INVALID_TIMESTAMP (both are
   unbounded by default, as in Kafka 3.6+, so uncompressed batches of a non-compacted topic
   are not walked record by record: their CRC vouches for their bytes, and the broker stores
   them as sent — Kafka also walks them to recompute the batch's max timestamp, which zoolog
   takes from the header);
5. rewriting, only where the topic asks for it: `compression.type` other than `producer`
   (and other than the batch's codec) recompresses the batch; `message.timestamp.type =
   LogAppendTime` stamps now as the batch's max timestamp and recomputes its CRC.

The result is what the partition appends: (buffer, header) pairs, untouched memoryviews of
the request where nothing was rewritten. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoolog.broker.topic_config import LONG_MAX
from zoolog.protocol.kafka import record_batch as rb
from zoolog.protocol.kafka.errors import Err, KafkaError

COMPRESSION_CODECS = {"uncompressed": rb.Codec.NONE, "gzip": rb.Codec.GZIP,
                      "snappy": rb.Codec.SNAPPY, "lz4": rb.Codec.LZ4, "zstd": rb.Codec.ZSTD}


@dataclass(frozen=True, slots=True)
class TopicRules:
    """The per-topic settings validation needs (resolved from the topic's config)."""

    max_message_bytes: int = 1048588
    compacted: bool = False
    compression: str = "producer"
    log_append_time: bool = False
    timestamp_before_max_ms: int = LONG_MAX
    timestamp_after_max_ms: int = LONG_MAX
    decompressed_bytes_max: int = 128 << 20


class RecordError(KafkaError):
    """A record-level failure: `batch_index` is the record's index in its batch, reported in
    ProduceResponse.record_errors (v8+)."""

    def __init__(self, code: int, message: str, batch_index: int) -> None:
        super().__init__(code, message)
        self.batch_index = batch_index


@dataclass(slots=True)
class ValidBatches:
    batches: list[tuple[memoryview, rb.BatchHeader]]
    log_append_time_ms: int
    """-1 for CreateTime topics, else the time stamped into every batch."""
    record_count: int


def validate(records: memoryview, rules: TopicRules, now_ms: int) -> ValidBatches:
    """Check the records of one partition of a Produce request; KafkaError on the first
    failure (the whole partition's append is refused, as in Kafka)."""
    out: list[tuple[memoryview, rb.BatchHeader]] = []
    count = 0
    walk_timestamps = (rules.timestamp_before_max_ms != LONG_MAX
                       or rules.timestamp_after_max_ms != LONG_MAX) and not rules.log_append_time
    target_codec = COMPRESSION_CODECS.get(rules.compression)  # None = keep the producer's
    pieces = rb.split_batches(records)
    for pos, header in pieces:
        size = header.batch_length + rb.LOG_OVERHEAD
        batch = records[pos : pos + size]
        if size > rules.max_message_bytes:
            raise KafkaError(Err.MESSAGE_TOO_LARGE,
                             f"record batch of {size} bytes exceeds max.message.bytes "
                             f"({rules.max_message_bytes})")
        _check_shape(header)
        if len(pieces) > 1:  # Kafka: one magic-2 batch per partition and request
            raise KafkaError(Err.INVALID_RECORD,
                             "a produce must carry exactly one record batch per partition")
        recompress = target_codec is not None and target_codec != header.codec
        if header.codec != rb.Codec.NONE or rules.compacted or walk_timestamps or recompress:
            records_of = rb.batch_records(batch, rules.decompressed_bytes_max)
            if len(records_of) != header.records_count:
                raise KafkaError(Err.INVALID_RECORD, "record count does not match the header")
            for index, record in enumerate(records_of):
                if header.codec != rb.Codec.NONE and record.offset_delta != index:
                    recompress = True  # Kafka reassigns inner offsets by rebuilding
                if rules.compacted and record.key is None:
                    raise RecordError(Err.INVALID_RECORD,
                                      "Compacted topic cannot accept message without key in "
                                      "topic partition", index)
                if walk_timestamps:
                    _check_timestamp(header.base_timestamp + record.timestamp_delta, rules,
                                     now_ms, index)
            if recompress:
                codec = header.codec if target_codec is None else target_codec
                rebuilt = rb.build_batch(
                    [r._replace(offset_delta=i) for i, r in enumerate(records_of)],
                    base_timestamp=header.base_timestamp, max_timestamp=header.max_timestamp,
                    codec=codec, producer_id=header.producer_id,
                    producer_epoch=header.producer_epoch, base_sequence=header.base_sequence,
                    transactional=header.is_transactional)
                batch = memoryview(bytearray(rebuilt))
                header = rb.read_header(batch)
        if rules.log_append_time:
            if not isinstance(batch.obj, bytearray):
                batch = memoryview(bytearray(batch))
            rb.stamp_log_append_time(batch, now_ms)
            header = rb.read_header(batch)
        out.append((batch, header))
        count += header.records_count
    return ValidBatches(out, now_ms if rules.log_append_time else -1, count)


def _check_shape(header: rb.BatchHeader) -> None:
    if header.is_control:
        raise KafkaError(Err.INVALID_RECORD, "clients are not allowed to write control records")
    if header.records_count != header.last_offset_delta + 1 or header.records_count <= 0:
        raise KafkaError(Err.INVALID_RECORD,
                         f"record count {header.records_count} does not match the last "
                         f"offset delta {header.last_offset_delta}")
    if header.producer_id >= 0 and header.base_sequence < 0:
        raise KafkaError(Err.INVALID_RECORD,
                         f"producer id {header.producer_id} without a sequence number")
    if header.is_transactional and header.producer_id < 0:
        raise KafkaError(Err.INVALID_RECORD, "a transactional batch needs a producer id")


def _check_timestamp(timestamp: int, rules: TopicRules, now_ms: int, index: int) -> None:
    if timestamp == rb.NO_TIMESTAMP:  # Kafka judges only records that carry a timestamp
        return
    if timestamp < now_ms - rules.timestamp_before_max_ms:
        raise RecordError(Err.INVALID_TIMESTAMP,
                          f"timestamp {timestamp} is more than message.timestamp.before.max.ms "
                          f"({rules.timestamp_before_max_ms}) before now", index)
    if timestamp > now_ms + rules.timestamp_after_max_ms:
        raise RecordError(Err.INVALID_TIMESTAMP,
                          f"timestamp {timestamp} is more than message.timestamp.after.max.ms "
                          f"({rules.timestamp_after_max_ms}) after now", index)
