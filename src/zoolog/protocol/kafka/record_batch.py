"""Kafka's record batch format (magic 2): the 61-byte header, CRC-32C, records, compression.

A record batch travels and rests as opaque bytes; this module reads what the broker needs
from it and builds the batches the broker writes itself (control markers, coordinator
records) or that zoolog's own client produces. It never touches files or sockets.

Layout (big-endian; offsets from the start of the batch):

    0  base_offset q        rewritten by the broker on append (not under the CRC)
    8  batch_length i       bytes after this field
   12  partition_leader_epoch i   rewritten by the broker (not under the CRC)
   16  magic b              2
   17  crc I                CRC-32C of bytes 21..end
   21  attributes h         bits 0-2 codec, 3 LogAppendTime, 4 transactional, 5 control,
                            6 delete horizon set
   23  last_offset_delta i
   27  base_timestamp q     (the delete horizon when bit 6 is set)
   35  max_timestamp q
   43  producer_id q
   51  producer_epoch h
   53  base_sequence i
   57  records_count i
   61  records              one compressed blob when the codec is not 0

A record: length varint, attributes b, timestamp_delta varlong, offset_delta varint, key
(varint length, -1 null), value (likewise), header count varint, then per header a key
(varint length + UTF-8) and a value (varint length, -1 null); varints are zig-zag.

Errors: `KafkaError` with CORRUPT_MESSAGE (bad CRC, truncated, malformed records),
INVALID_RECORD, UNSUPPORTED_FOR_MESSAGE_FORMAT (magic other than 2) or
UNSUPPORTED_COMPRESSION_TYPE. Decompression is bounded by a caller-given size, so a small
batch cannot expand into an unbounded allocation.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import cramjam
from crc32c import crc32c

from zoolog.protocol.kafka.errors import Err, KafkaError

Buf = bytes | bytearray | memoryview

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_BYTES = HEADER.size  # 61
LOG_OVERHEAD = 12
"""base_offset + batch_length: the bytes before `batch_length` counts."""
CRC_START = 21
MAGIC = 2

_OFFSET_AND_LENGTH = struct.Struct(">qi")
_LEADER_EPOCH = struct.Struct(">i")
_MAX_TIMESTAMP = struct.Struct(">q")
_CRC_AND_ATTRIBUTES = struct.Struct(">Ih")
_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_VALUE = struct.Struct(">hi")

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_TIMESTAMP = -1
NO_PARTITION_LEADER_EPOCH = -1


class Codec:
    """Compression codec ids (attribute bits 0-2) and the `compression.type` names."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


CODEC_NAMES = {"none": Codec.NONE, "uncompressed": Codec.NONE, "gzip": Codec.GZIP,
               "snappy": Codec.SNAPPY, "lz4": Codec.LZ4, "zstd": Codec.ZSTD}

ATTR_CODEC_MASK = 0x07
ATTR_LOG_APPEND_TIME = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
ATTR_DELETE_HORIZON = 0x40

CONTROL_ABORT = 0
CONTROL_COMMIT = 1


class BatchHeader(NamedTuple):
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch takes, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def codec(self) -> int:
        return self.attributes & ATTR_CODEC_MASK

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    @property
    def last_sequence(self) -> int:
        if self.base_sequence < 0:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) & 0x7FFFFFFF


def read_header(buf: Buf, pos: int = 0) -> BatchHeader:
    """The header of the batch at `pos`; CORRUPT_MESSAGE if fewer than 61 bytes are there.
    Does not check the CRC or that the whole batch is present."""
    if len(buf) - pos < HEADER_BYTES:
        raise KafkaError(Err.CORRUPT_MESSAGE, "record batch shorter than its 61-byte header")
    return BatchHeader._make(HEADER.unpack_from(buf, pos))


def batch_extent(buf: Buf, pos: int) -> int:
    """The size in bytes of the batch starting at `pos` as its length field claims, or -1 if
    fewer than 12 bytes remain (the caller decides whether that is a torn tail)."""
    if len(buf) - pos < LOG_OVERHEAD:
        return -1
    length: int = _OFFSET_AND_LENGTH.unpack_from(buf, pos)[1]
    return length + LOG_OVERHEAD


def compute_crc(buf: Buf, pos: int, size: int) -> int:
    """CRC-32C over the batch's bytes from `attributes` to its end."""
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    crc: int = crc32c(view[pos + CRC_START : pos + size])
    return crc


def split_batches(buf: Buf) -> list[tuple[int, BatchHeader]]:
    """Split a records blob (a Produce request's `records`) into (position, header) pairs,
    checking each batch's magic, length and CRC. CORRUPT_MESSAGE / INVALID_RECORD /
    UNSUPPORTED_FOR_MESSAGE_FORMAT on the first bad one."""
    out: list[tuple[int, BatchHeader]] = []
    pos = 0
    end = len(buf)
    if end == 0:
        raise KafkaError(Err.INVALID_RECORD, "empty record set")
    while pos < end:
        if end - pos < HEADER_BYTES:
            if end - pos >= 17 and buf[pos + 16] != MAGIC:
                raise KafkaError(Err.UNSUPPORTED_FOR_MESSAGE_FORMAT,
                                 f"record batch magic {buf[pos + 16]}; only magic 2 is supported")
            raise KafkaError(Err.CORRUPT_MESSAGE, "truncated record batch")
        header = BatchHeader._make(HEADER.unpack_from(buf, pos))
        if header.magic != MAGIC:
            raise KafkaError(Err.UNSUPPORTED_FOR_MESSAGE_FORMAT,
                             f"record batch magic {header.magic}; only magic 2 is supported")
        size = header.batch_length + LOG_OVERHEAD
        if header.batch_length < HEADER_BYTES - LOG_OVERHEAD or pos + size > end:
            raise KafkaError(Err.CORRUPT_MESSAGE,
                             f"record batch length {header.batch_length} does not fit "
                             f"the {end - pos} bytes left")
        if compute_crc(buf, pos, size) != header.crc:
            raise KafkaError(Err.CORRUPT_MESSAGE, "record batch CRC-32C mismatch")
        out.append((pos, header))
        pos += size
    return out


def stamp(batch: bytearray | memoryview, base_offset: int, partition_leader_epoch: int) -> None:
    """Write the broker's base offset and leader epoch into a batch (neither is under the
    CRC, so the client's CRC stays valid)."""
    struct.pack_into(">q", batch, 0, base_offset)
    _LEADER_EPOCH.pack_into(batch, 12, partition_leader_epoch)


def stamp_log_append_time(batch: bytearray | memoryview, now_ms: int) -> None:
    """Mark a batch LogAppendTime with max_timestamp = now and recompute its CRC (Kafka's
    `setMaxTimestamp(LOG_APPEND_TIME, now)`)."""
    (attributes,) = struct.unpack_from(">h", batch, 21)
    struct.pack_into(">h", batch, 21, attributes | ATTR_LOG_APPEND_TIME)
    _MAX_TIMESTAMP.pack_into(batch, 35, now_ms)
    struct.pack_into(">I", batch, 17, crc32c(memoryview(batch)[CRC_START:]))


# --- compression -------------------------------------------------------------------------

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = 16
_BE_INT = struct.Struct(">i")


def decompress(codec: int, data: Buf, size_max: int) -> bytes:
    """The uncompressed bytes of a batch's records; CORRUPT_MESSAGE if they do not
    decompress, RECORD_LIST_TOO_LARGE if they would exceed `size_max` bytes."""
    try:
        if codec == Codec.GZIP:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = inflater.decompress(data, size_max + 1)
            if len(out) > size_max or inflater.unconsumed_tail:
                raise _too_large(size_max)
            return out
        if codec == Codec.SNAPPY:
            return _snappy_decompress(data, size_max)
        if codec == Codec.LZ4:
            return _bounded(cramjam.lz4.decompress_into, data, size_max)
        if codec == Codec.ZSTD:
            return _bounded(cramjam.zstd.decompress_into, data, size_max)
    except KafkaError:
        raise
    except Exception as exc:  # each library has its own error types
        raise KafkaError(Err.CORRUPT_MESSAGE, f"records do not decompress: {exc}") from exc
    raise KafkaError(Err.UNSUPPORTED_COMPRESSION_TYPE, f"unknown compression codec {codec}")


def compress(codec: int, data: Buf) -> bytes:
    """Compress records the way Kafka's clients do (raw snappy, LZ4 frame, zstd frame,
    gzip)."""
    if codec == Codec.GZIP:
        deflater = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return deflater.compress(data) + deflater.flush()
    if codec == Codec.SNAPPY:
        return bytes(cramjam.snappy.compress_raw(data))
    if codec == Codec.LZ4:
        return bytes(cramjam.lz4.compress(data))
    if codec == Codec.ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise KafkaError(Err.UNSUPPORTED_COMPRESSION_TYPE, f"unknown compression codec {codec}")


def _too_large(size_max: int) -> KafkaError:
    return KafkaError(Err.RECORD_LIST_TOO_LARGE,
                      f"records decompress to more than {size_max} bytes")


class _Scratch:
    """One reusable output buffer for bounded decompression (grown, never shrunk)."""

    buffer = bytearray(0)


def _bounded(decompress_into: object, data: Buf, size_max: int) -> bytes:
    if len(_Scratch.buffer) < size_max + 1:
        _Scratch.buffer = bytearray(size_max + 1)
    out = memoryview(_Scratch.buffer)[: size_max + 1]
    try:
        written = decompress_into(data, out)  # type: ignore[operator]
    except Exception as exc:
        if "whole buffer" in str(exc):
            raise _too_large(size_max) from exc
        raise
    if written > size_max:
        raise _too_large(size_max)
    return bytes(out[:written])


def _snappy_decompress(data: Buf, size_max: int) -> bytes:
    """Raw snappy (librdkafka, kafka-python without xerial) or snappy-java's xerial framing
    (the Java client): a 16-byte header, then blocks of int32 length + raw snappy."""
    view = memoryview(data)
    if bytes(view[:8]) != _XERIAL_MAGIC:
        if cramjam.snappy.decompress_raw_len(view) > size_max:
            raise _too_large(size_max)
        return bytes(cramjam.snappy.decompress_raw(view))
    parts: list[bytes] = []
    total = 0
    pos = _XERIAL_HEADER
    while pos < len(view):
        (length,) = _BE_INT.unpack_from(view, pos)
        pos += 4
        if length < 0 or pos + length > len(view):
            raise KafkaError(Err.CORRUPT_MESSAGE, "truncated xerial snappy block")
        block = view[pos : pos + length]
        total += cramjam.snappy.decompress_raw_len(block)
        if total > size_max:
            raise _too_large(size_max)
        parts.append(bytes(cramjam.snappy.decompress_raw(block)))
        pos += length
    return b"".join(parts)


# --- records -----------------------------------------------------------------------------


class Record(NamedTuple):
    """One record of a batch, as the wire holds it (deltas against the batch header)."""

    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    attributes: int = 0


def _read_varint(buf: Buf, pos: int) -> tuple[int, int]:
    b = buf[pos]
    pos += 1
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos
    result = b & 0x7F
    shift = 7
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise KafkaError(Err.CORRUPT_MESSAGE, "varint longer than 10 bytes")


def _write_varint(out: bytearray, value: int) -> None:
    v = (value << 1) ^ (value >> 63)
    v &= 0xFFFFFFFFFFFFFFFF
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _read_bytes(buf: Buf, pos: int, end: int) -> tuple[bytes | None, int]:
    n, pos = _read_varint(buf, pos)
    if n < 0:
        if n != -1:
            raise KafkaError(Err.CORRUPT_MESSAGE, f"negative length {n} in a record")
        return None, pos
    if pos + n > end:
        raise KafkaError(Err.CORRUPT_MESSAGE, "record field runs past the record")
    return bytes(buf[pos : pos + n]), pos + n


def decode_records(payload: Buf, count: int) -> list[Record]:
    """The `count` records of an (uncompressed) payload; CORRUPT_MESSAGE if it holds more,
    fewer or malformed ones."""
    records: list[Record] = []
    pos = 0
    end = len(payload)
    try:
        for _ in range(count):
            if pos >= end:
                raise KafkaError(Err.INVALID_RECORD,
                                 f"Incorrect declared batch size, premature EOF reached: "
                                 f"{len(records)} of {count} records")
            length, pos = _read_varint(payload, pos)
            record_end = pos + length
            if length < 6 or record_end > end:
                raise KafkaError(Err.CORRUPT_MESSAGE, f"record length {length} is invalid")
            attributes = payload[pos]
            pos += 1
            timestamp_delta, pos = _read_varint(payload, pos)
            offset_delta, pos = _read_varint(payload, pos)
            key, pos = _read_bytes(payload, pos, record_end)
            value, pos = _read_bytes(payload, pos, record_end)
            header_count, pos = _read_varint(payload, pos)
            if header_count < 0 or header_count > record_end - pos:
                raise KafkaError(Err.CORRUPT_MESSAGE, f"record header count {header_count}")
            headers: list[tuple[str, bytes | None]] = []
            for _ in range(header_count):
                raw_key, pos = _read_bytes(payload, pos, record_end)
                if raw_key is None:
                    raise KafkaError(Err.CORRUPT_MESSAGE, "null record header key")
                header_value, pos = _read_bytes(payload, pos, record_end)
                headers.append((raw_key.decode("utf-8"), header_value))
            if pos != record_end:
                raise KafkaError(Err.CORRUPT_MESSAGE, "record length does not match its fields")
            records.append(Record(offset_delta, timestamp_delta, key, value, tuple(headers),
                                  attributes))
    except (IndexError, UnicodeDecodeError) as exc:
        raise KafkaError(Err.CORRUPT_MESSAGE, f"malformed record: {exc}") from exc
    if pos != end:
        raise KafkaError(Err.INVALID_RECORD,
                         f"record batch holds more bytes than its {count} records")
    return records


def encode_record(out: bytearray, record: Record) -> None:
    body = bytearray()
    body.append(record.attributes & 0xFF)
    _write_varint(body, record.timestamp_delta)
    _write_varint(body, record.offset_delta)
    for field in (record.key, record.value):
        if field is None:
            _write_varint(body, -1)
        else:
            _write_varint(body, len(field))
            body += field
    _write_varint(body, len(record.headers))
    for name, value in record.headers:
        raw = name.encode("utf-8")
        _write_varint(body, len(raw))
        body += raw
        if value is None:
            _write_varint(body, -1)
        else:
            _write_varint(body, len(value))
            body += value
    _write_varint(out, len(body))
    out += body


def batch_records(batch: Buf, size_max: int) -> list[Record]:
    """The records of a whole batch (decompressing if needed, bounded by `size_max`)."""
    header = read_header(batch)
    payload = memoryview(batch)[HEADER_BYTES : header.size]
    if header.codec != Codec.NONE:
        payload = memoryview(decompress(header.codec, payload, size_max))
    return decode_records(payload, header.records_count)


def iter_batches(buf: Buf) -> Iterator[tuple[int, BatchHeader]]:
    """(position, header) of each whole batch in `buf`, stopping at a partial tail; no CRC
    check (for reading a log whose batches were validated on append)."""
    pos = 0
    end = len(buf)
    while end - pos >= HEADER_BYTES:
        header = BatchHeader._make(HEADER.unpack_from(buf, pos))
        size = header.batch_length + LOG_OVERHEAD
        if size < HEADER_BYTES or pos + size > end:
            return
        yield pos, header
        pos += size


def build_batch(
    records: Sequence[Record],
    *,
    base_offset: int = 0,
    base_timestamp: int = 0,
    max_timestamp: int | None = None,
    codec: int = Codec.NONE,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    transactional: bool = False,
    control: bool = False,
    log_append_time: bool = False,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    last_offset_delta: int | None = None,
) -> bytes:
    """A complete, CRC-valid batch of `records` (whose offset and timestamp deltas are taken
    as given)."""
    payload = bytearray()
    for record in records:
        encode_record(payload, record)
    body: Buf = payload if codec == Codec.NONE else compress(codec, payload)
    attributes = codec
    if log_append_time:
        attributes |= ATTR_LOG_APPEND_TIME
    if transactional:
        attributes |= ATTR_TRANSACTIONAL
    if control:
        attributes |= ATTR_CONTROL
    if last_offset_delta is None:
        last_offset_delta = records[-1].offset_delta if records else 0
    if max_timestamp is None:
        max_timestamp = base_timestamp + max((r.timestamp_delta for r in records), default=0)
    out = bytearray(HEADER.pack(
        base_offset, HEADER_BYTES - LOG_OVERHEAD + len(body), partition_leader_epoch, MAGIC, 0,
        attributes, last_offset_delta, base_timestamp, max_timestamp, producer_id,
        producer_epoch, base_sequence, len(records)))
    out += body
    struct.pack_into(">I", out, 17, crc32c(memoryview(out)[CRC_START:]))
    return bytes(out)


def control_batch(*, commit: bool, producer_id: int, producer_epoch: int,
                  coordinator_epoch: int, timestamp_ms: int,
                  partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH) -> bytes:
    """A COMMIT or ABORT transaction marker: a control batch of one record, key (version 0,
    type), value (version 0, coordinator epoch)."""
    record = Record(0, 0, _CONTROL_KEY.pack(0, CONTROL_COMMIT if commit else CONTROL_ABORT),
                    _CONTROL_VALUE.pack(0, coordinator_epoch))
    return build_batch([record], base_timestamp=timestamp_ms, producer_id=producer_id,
                       producer_epoch=producer_epoch, transactional=True, control=True,
                       partition_leader_epoch=partition_leader_epoch)


def control_type(record: Record) -> int | None:
    """CONTROL_ABORT / CONTROL_COMMIT for a control record's key, None if unrecognised."""
    if record.key is None or len(record.key) < 4:
        return None
    _, kind = _CONTROL_KEY.unpack_from(record.key)
    return kind if kind in (CONTROL_ABORT, CONTROL_COMMIT) else None
