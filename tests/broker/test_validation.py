"""Kafka's produce-time checks (`validation.validate`, after `LogValidator`), one hand-built
batch per error code (built with `record_batch.build_batch`, then corrupted), the rewrites
(LogAppendTime, recompression), decompression bombs, and a fuzz: whatever bytes come in,
`validate` raises only KafkaError, and what it accepts are whole CRC-valid batches.
"""

from __future__ import annotations

import struct
from itertools import product

import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoolog.broker.validation import RecordError, TopicRules, ValidBatches, validate
from zoolog.protocol.kafka import record_batch as rb
from zoolog.protocol.kafka.errors import Err, KafkaError
from zoolog.protocol.kafka.record_batch import Codec, Record, build_batch

NOW_MS = 1_700_000_000_000
CODECS = {"none": Codec.NONE, "gzip": Codec.GZIP, "snappy": Codec.SNAPPY, "lz4": Codec.LZ4,
          "zstd": Codec.ZSTD}
TOPIC_COMPRESSION = {"producer": None, "uncompressed": Codec.NONE, "gzip": Codec.GZIP,
                     "snappy": Codec.SNAPPY, "lz4": Codec.LZ4, "zstd": Codec.ZSTD}


def recs(n: int = 3, *, keys: list[bytes | None] | None = None,
         ts_deltas: list[int] | None = None, value: bytes = b"value") -> list[Record]:
    return [Record(i, ts_deltas[i] if ts_deltas else i,
                   keys[i] if keys is not None else b"key-%d" % i, value + b"-%d" % i,
                   (("h", b"v"),) if i == 0 else ())
            for i in range(n)]


def batch(n: int = 3, **kwargs: object) -> bytes:
    keys = kwargs.pop("keys", None)
    ts_deltas = kwargs.pop("ts_deltas", None)
    value = kwargs.pop("value", b"value")
    kwargs.setdefault("base_timestamp", NOW_MS)
    return build_batch(recs(n, keys=keys, ts_deltas=ts_deltas, value=value),  # type: ignore[arg-type]
                       **kwargs)  # type: ignore[arg-type]


def run(data: bytes | bytearray, rules: TopicRules | None = None,
        now_ms: int = NOW_MS) -> ValidBatches:
    return validate(memoryview(bytearray(data)), rules or TopicRules(), now_ms)


def code_of(data: bytes | bytearray, rules: TopicRules | None = None,
            now_ms: int = NOW_MS) -> KafkaError:
    with pytest.raises(KafkaError) as caught:
        run(data, rules, now_ms)
    return caught.value


def recrc(data: bytearray, pos: int = 0) -> bytearray:
    """Make the batch at `pos` CRC-valid again after editing it."""
    size = struct.unpack_from(">i", data, pos + 8)[0] + 12
    struct.pack_into(">I", data, pos + 17, crc32c(bytes(data[pos + 21 : pos + size])))
    return data


def set_field(raw: bytes, offset: int, fmt: str, value: int) -> bytearray:
    data = bytearray(raw)
    struct.pack_into(fmt, data, offset, value)
    return recrc(data)


def assert_whole_valid_batches(out: ValidBatches) -> None:
    for view, header in out.batches:
        data = bytes(view)
        assert rb.split_batches(data) == [(0, header)]


# --- valid input is passed through ----------------------------------------------------------


def test_a_valid_batch_is_kept_as_sent() -> None:
    raw = batch(3)
    out = run(raw)
    assert out.record_count == 3 and out.log_append_time_ms == -1
    assert b"".join(bytes(v) for v, _ in out.batches) == raw
    assert [h.records_count for _, h in out.batches] == [3]


def test_two_batches_for_one_partition_are_invalid_record() -> None:
    # Kafka's getFirstBatchAndMaybeValidateNoMoreBatches: one magic-2 batch per partition
    assert code_of(batch(3) + batch(2)).code == Err.INVALID_RECORD


# --- CORRUPT_MESSAGE ---------------------------------------------------------------------------


@pytest.mark.parametrize("position", [21, 30, 57, 61, -1])
def test_a_bad_crc_is_corrupt_message(position: int) -> None:
    data = bytearray(batch(3))
    data[position] ^= 0x01
    assert code_of(data).code == Err.CORRUPT_MESSAGE


def test_a_bad_crc_in_a_later_batch_is_corrupt_message() -> None:
    data = bytearray(batch(1) + batch(2))
    data[-2] ^= 0x40
    assert code_of(data).code == Err.CORRUPT_MESSAGE


@pytest.mark.parametrize("keep", [0.3, 0.9, 0.99])
def test_a_truncated_batch_is_corrupt_message(keep: float) -> None:
    raw = batch(3)
    assert code_of(raw[: int(len(raw) * keep)]).code == Err.CORRUPT_MESSAGE
    assert code_of(raw + raw[: int(len(raw) * keep)]).code == Err.CORRUPT_MESSAGE


@pytest.mark.parametrize("length", [0, 10, 48, 10_000, -1])
def test_a_lying_batch_length_is_corrupt_message(length: int) -> None:
    data = bytearray(batch(3))
    struct.pack_into(">i", data, 8, length)
    assert code_of(data).code == Err.CORRUPT_MESSAGE


def test_records_that_do_not_decompress_are_corrupt_message() -> None:
    raw = bytearray(batch(3, codec=Codec.GZIP))
    raw[61 + 12 : 61 + 20] = b"\xff" * 8  # inside the deflate stream
    assert code_of(recrc(raw)).code == Err.CORRUPT_MESSAGE


# --- UNSUPPORTED_FOR_MESSAGE_FORMAT -----------------------------------------------------------


@pytest.mark.parametrize("magic", [0, 1, 3])
def test_other_magics_are_unsupported_for_message_format(magic: int) -> None:
    data = bytearray(batch(3))
    data[16] = magic
    assert code_of(data).code == Err.UNSUPPORTED_FOR_MESSAGE_FORMAT


def test_a_short_magic_1_message_set_is_unsupported_for_message_format() -> None:
    # a v1 message: offset, size, crc, magic 1, attributes, timestamp, key, value (34 bytes)
    message = struct.pack(">qiIbbqi", 0, 22, 0, 1, 0, NOW_MS, -1) + struct.pack(">i", 0)
    assert len(message) < rb.HEADER_BYTES
    assert code_of(message).code == Err.UNSUPPORTED_FOR_MESSAGE_FORMAT


# --- MESSAGE_TOO_LARGE ----------------------------------------------------------------------


def test_a_batch_over_max_message_bytes_is_message_too_large() -> None:
    raw = batch(3)
    assert run(raw, TopicRules(max_message_bytes=len(raw))).record_count == 3
    error = code_of(raw, TopicRules(max_message_bytes=len(raw) - 1))
    assert error.code == Err.MESSAGE_TOO_LARGE
    assert "max.message.bytes" in error.message


# --- INVALID_RECORD ---------------------------------------------------------------------------


@pytest.mark.parametrize("last_offset_delta", [1, 3, 100, -1])
def test_a_record_count_that_does_not_match_the_last_offset_delta_is_invalid(
        last_offset_delta: int) -> None:
    raw = batch(3, last_offset_delta=last_offset_delta)
    assert code_of(raw).code == Err.INVALID_RECORD


def test_a_zero_record_count_is_invalid() -> None:
    raw = set_field(batch(1), 57, ">i", 0)
    raw = set_field(bytes(raw), 23, ">i", -1)
    assert code_of(raw).code == Err.INVALID_RECORD


def test_a_declared_count_above_the_records_held_is_invalid_record() -> None:
    """Kafka's record iterator: "Incorrect declared batch size, premature EOF reached"
    (InvalidRecordException -> INVALID_RECORD); here for a compressed batch, whose records
    the broker must decompress and count."""
    payload = bytearray()
    for record in recs(2):
        rb.encode_record(payload, record)
    blob = rb.compress(Codec.GZIP, payload)
    header = rb.HEADER.pack(0, rb.HEADER_BYTES - 12 + len(blob), -1, 2, 0, Codec.GZIP, 2,
                            NOW_MS, NOW_MS, -1, -1, -1, 3)
    raw = recrc(bytearray(header + blob))
    assert code_of(raw).code == Err.INVALID_RECORD


def test_a_control_batch_from_a_client_is_invalid() -> None:
    raw = rb.control_batch(commit=True, producer_id=7, producer_epoch=0, coordinator_epoch=0,
                           timestamp_ms=NOW_MS)
    error = code_of(raw)
    assert error.code == Err.INVALID_RECORD and "control" in error.message


def test_a_producer_id_without_a_sequence_is_invalid() -> None:
    assert code_of(batch(2, producer_id=7, producer_epoch=0)).code == Err.INVALID_RECORD
    assert run(batch(2, producer_id=7, producer_epoch=0, base_sequence=0)).record_count == 2


def test_a_transactional_batch_without_a_producer_id_is_invalid() -> None:
    assert code_of(batch(2, transactional=True)).code == Err.INVALID_RECORD


@pytest.mark.parametrize("codecs", [("gzip", "gzip"), ("none", "lz4"), ("zstd", "none")])
def test_a_compressed_produce_with_two_batches_is_invalid(codecs: tuple[str, str]) -> None:
    raw = batch(2, codec=CODECS[codecs[0]]) + batch(2, codec=CODECS[codecs[1]])
    assert code_of(raw).code == Err.INVALID_RECORD


def test_an_empty_record_set_is_invalid() -> None:
    assert code_of(b"").code == Err.INVALID_RECORD


# --- keys on compacted topics -------------------------------------------------------------------


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_compacted_topics_need_a_key_on_every_record(codec: str) -> None:
    rules = TopicRules(compacted=True)
    assert run(batch(3, codec=CODECS[codec]), rules).record_count == 3
    raw = batch(4, keys=[b"a", b"b", None, b"d"], codec=CODECS[codec])
    with pytest.raises(RecordError) as caught:
        run(raw, rules)
    assert caught.value.code == Err.INVALID_RECORD
    assert caught.value.batch_index == 2
    assert "Compacted topic cannot accept message without key" in caught.value.message
    assert run(raw).record_count == 4  # a non-compacted topic takes it


# --- INVALID_TIMESTAMP ----------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_timestamps_before_the_before_bound_are_invalid(codec: str) -> None:
    rules = TopicRules(timestamp_before_max_ms=1000)
    edge = batch(3, base_timestamp=NOW_MS - 1000, ts_deltas=[5, 0, 7], codec=CODECS[codec])
    assert run(edge, rules).record_count == 3
    raw = batch(3, base_timestamp=NOW_MS - 1001, ts_deltas=[5, 0, 7], codec=CODECS[codec])
    with pytest.raises(RecordError) as caught:
        run(raw, rules)
    assert caught.value.code == Err.INVALID_TIMESTAMP and caught.value.batch_index == 1
    assert "message.timestamp.before.max.ms" in caught.value.message


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_timestamps_after_the_after_bound_are_invalid(codec: str) -> None:
    rules = TopicRules(timestamp_after_max_ms=500)
    assert run(batch(3, base_timestamp=NOW_MS + 498, codec=CODECS[codec]), rules)
    raw = batch(3, base_timestamp=NOW_MS + 498, ts_deltas=[0, 2, 3], codec=CODECS[codec])
    with pytest.raises(RecordError) as caught:
        run(raw, rules)
    assert caught.value.code == Err.INVALID_TIMESTAMP and caught.value.batch_index == 2
    assert "message.timestamp.after.max.ms" in caught.value.message


def test_unbounded_timestamps_and_log_append_time_topics_take_any_timestamp() -> None:
    old = batch(2, base_timestamp=0)
    assert run(old).record_count == 2
    rules = TopicRules(timestamp_before_max_ms=10, timestamp_after_max_ms=10,
                       log_append_time=True)
    assert run(old, rules).record_count == 2


def test_a_record_without_timestamp_is_not_judged() -> None:
    """Kafka's `validateTimestamp` skips records whose timestamp is NO_TIMESTAMP (-1)."""
    raw = batch(2, base_timestamp=-1, ts_deltas=[0, 0], max_timestamp=-1)
    assert run(raw, TopicRules(timestamp_before_max_ms=1000)).record_count == 2


# --- LogAppendTime ---------------------------------------------------------------------------


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_log_append_time_stamps_now_and_keeps_the_crc_valid(codec: str) -> None:
    raw = batch(3, codec=CODECS[codec], base_timestamp=NOW_MS - 50_000)
    out = run(raw, TopicRules(log_append_time=True), now_ms=NOW_MS)
    assert out.log_append_time_ms == NOW_MS
    [(view, header)] = out.batches
    assert header.attributes & rb.ATTR_LOG_APPEND_TIME
    assert header.max_timestamp == NOW_MS
    assert header.codec == CODECS[codec]
    data = bytes(view)
    assert rb.compute_crc(data, 0, len(data)) == header.crc
    assert rb.split_batches(data) == [(0, header)]
    assert rb.batch_records(data, 1 << 20) == rb.batch_records(raw, 1 << 20)
    assert data[61:] == raw[61:]  # the records are untouched


# --- recompression ----------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), list(product(sorted(CODECS),
                                                             sorted(TOPIC_COMPRESSION))))
def test_recompression_to_the_topic_codec(source: str, target: str) -> None:
    raw = batch(5, codec=CODECS[source], producer_id=9, producer_epoch=2, base_sequence=40,
                value=b"x" * 200)
    out = run(raw, TopicRules(compression=target))
    [(view, header)] = out.batches
    expected = CODECS[source] if TOPIC_COMPRESSION[target] is None else TOPIC_COMPRESSION[target]
    assert header.codec == expected
    data = bytes(view)
    assert rb.split_batches(data) == [(0, header)]
    assert rb.batch_records(data, 1 << 20) == rb.batch_records(raw, 1 << 20)
    before = rb.read_header(raw)
    for name in ("producer_id", "producer_epoch", "base_sequence", "records_count",
                 "last_offset_delta", "base_timestamp", "max_timestamp"):
        assert getattr(header, name) == getattr(before, name), name
    if expected == CODECS[source]:
        assert data == raw  # nothing to do: the producer's bytes, untouched
    assert out.record_count == 5


def test_wrong_inner_offsets_of_a_compressed_batch_are_reassigned() -> None:
    odd = [Record(d, 0, b"k", b"v%d" % d) for d in (0, 5, 6)]
    raw = build_batch(odd, codec=Codec.GZIP, base_timestamp=NOW_MS, last_offset_delta=2)
    [(view, header)] = run(raw).batches
    assert header.codec == Codec.GZIP
    assert [r.offset_delta for r in rb.batch_records(bytes(view), 1 << 20)] == [0, 1, 2]


def test_recompression_and_log_append_time_together() -> None:
    raw = batch(3, codec=Codec.SNAPPY)
    out = run(raw, TopicRules(compression="zstd", log_append_time=True), now_ms=NOW_MS + 5)
    [(view, header)] = out.batches
    assert header.codec == Codec.ZSTD and header.max_timestamp == NOW_MS + 5
    assert rb.split_batches(bytes(view)) == [(0, header)]
    assert rb.batch_records(bytes(view), 1 << 20) == rb.batch_records(raw, 1 << 20)


# --- decompression bombs ---------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_a_decompression_bomb_is_record_list_too_large(codec: str) -> None:
    bomb = [Record(i, 0, b"k", bytes(200_000)) for i in range(5)]  # ~1 MB of zeros
    raw = build_batch(bomb, codec=CODECS[codec], base_timestamp=NOW_MS)
    assert len(raw) < 100_000
    error = code_of(raw, TopicRules(decompressed_bytes_max=64 << 10))
    assert error.code == Err.RECORD_LIST_TOO_LARGE
    assert run(raw, TopicRules(decompressed_bytes_max=2 << 20)).record_count == 5


def test_a_xerial_snappy_bomb_is_record_list_too_large() -> None:
    import cramjam

    payload = bytearray()
    for i in range(5):
        rb.encode_record(payload, Record(i, 0, b"k", bytes(100_000)))
    block = bytes(cramjam.snappy.compress_raw(bytes(payload)))
    xerial = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + struct.pack(">i", len(block)) + block
    header = rb.HEADER.pack(0, rb.HEADER_BYTES - 12 + len(xerial), -1, 2, 0, Codec.SNAPPY, 4,
                            NOW_MS, NOW_MS, -1, -1, -1, 5)
    raw = recrc(bytearray(header + xerial))
    assert run(raw).record_count == 5  # snappy-java's framing is understood
    assert code_of(raw, TopicRules(decompressed_bytes_max=64 << 10)).code == \
        Err.RECORD_LIST_TOO_LARGE


# --- fuzz -------------------------------------------------------------------------------------

FUZZ_RULES = st.builds(
    TopicRules,
    max_message_bytes=st.sampled_from([1048588, 200]),
    compacted=st.booleans(),
    compression=st.sampled_from(sorted(TOPIC_COMPRESSION)),
    log_append_time=st.booleans(),
    timestamp_before_max_ms=st.sampled_from([2**63 - 1, 1000]),
    timestamp_after_max_ms=st.sampled_from([2**63 - 1, 1000]),
    decompressed_bytes_max=st.sampled_from([1 << 16, 300]),
)


def _validate_raises_only_kafka_errors(data: bytes, rules: TopicRules) -> None:
    try:
        out = validate(memoryview(bytearray(data)), rules, NOW_MS)
    except KafkaError:
        return
    assert_whole_valid_batches(out)
    assert out.record_count == sum(h.records_count for _, h in out.batches)


@given(st.binary(max_size=400), FUZZ_RULES)
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_only_kafka_errors(data: bytes, rules: TopicRules) -> None:
    _validate_raises_only_kafka_errors(data, rules)


@st.composite
def valid_batches(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(1, 4))
    records = [Record(i, draw(st.integers(-5, 5)),
                      draw(st.one_of(st.none(), st.binary(max_size=8))),
                      draw(st.one_of(st.none(), st.binary(max_size=24))),
                      tuple(draw(st.lists(st.tuples(st.text(max_size=4),
                                                    st.one_of(st.none(),
                                                              st.binary(max_size=4))),
                                          max_size=2))))
               for i in range(n)]
    pid = draw(st.sampled_from([-1, 5]))
    return build_batch(records, base_timestamp=NOW_MS + draw(st.integers(-2000, 2000)),
                       codec=draw(st.sampled_from(sorted(CODECS.values()))),
                       producer_id=pid, producer_epoch=0 if pid >= 0 else -1,
                       base_sequence=draw(st.sampled_from([-1, 0, 7])) if pid >= 0 else -1)


@given(st.lists(valid_batches(), min_size=1, max_size=2), st.data(), FUZZ_RULES)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_batches_raise_only_kafka_errors(batches: list[bytes], data: st.DataObject,
                                                 rules: TopicRules) -> None:
    raw = bytearray(b"".join(batches))
    for _ in range(data.draw(st.integers(0, 4), label="flips")):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans(), label="cut"):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    raw += data.draw(st.binary(max_size=16), label="tail")
    if data.draw(st.booleans(), label="fix crc") and len(raw) >= 21:
        size = struct.unpack_from(">i", raw, 8)[0] + 12
        if 21 <= size <= len(raw):
            recrc(raw)  # let the damage through to the record parser
    _validate_raises_only_kafka_errors(bytes(raw), rules)
