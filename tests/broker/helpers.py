"""A `Broker` over the in-memory crashing file system, and the batches the broker tests send.

Everything is driven directly (no sockets): requests go through the real codecs with `wire`
(encoded at their version and decoded again, so records arrive as memoryviews of the frame,
as the runtime hands them over), and time is an argument.
"""

from __future__ import annotations

from typing import Any

from zoolog.broker.broker import Broker
from zoolog.broker.metadata import MetadataImage, PartitionInfo, TopicInfo
from zoolog.broker.partition import AppendResult, Partition
from zoolog.broker.settings import BrokerSettings
from zoolog.broker.validation import validate
from zoolog.broker.znodes import BrokerRegistration
from zoolog.logstore.files import FileSlice
from zoolog.protocol.kafka.record_batch import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    Codec,
    Record,
    build_batch,
)
from zoolog.testing.log_files import MemoryLogFileSystem

START_MS = 1_700_000_000_000
CLUSTER_ID = "zoologTestClusterId00A"


def topic_id_of(name: str) -> bytes:
    """A stable, distinct 16-byte topic id per name."""
    raw = name.encode()[:15]
    return bytes([len(name) % 256]) + raw + b"\x01" * (15 - len(raw))


def topic_info(name: str, partitions: int = 1, configs: dict[str, str] | None = None,
               leader_epoch: int = 0, isr: list[int] | None = None,
               topic_id: bytes | None = None) -> TopicInfo:
    return TopicInfo(name, topic_id if topic_id is not None else topic_id_of(name),
                     [PartitionInfo(i, 0, leader_epoch, [0], list(isr if isr is not None
                                                                  else [0]))
                      for i in range(partitions)],
                     dict(configs or {}))


def new_broker(*topics: TopicInfo, fs: MemoryLogFileSystem | None = None,
               settings: BrokerSettings | None = None, now_ms: int = START_MS) -> Broker:
    """A broker (id 0) whose logs live in `fs`, with `topics` open. Reusing an `fs` is a
    restart: topics are put in the metadata image before the logs open, as the runtime
    does."""
    fs = fs if fs is not None else MemoryLogFileSystem()
    image = MetadataImage(CLUSTER_ID, BrokerRegistration(0, "127.0.0.1", 9092))
    image.controller_id = 0
    broker = Broker(settings or BrokerSettings(), image, fs)
    for info in topics:
        image.put_topic(info)
    broker.open_logs(now_ms)
    for info in topics:
        broker.open_topic(info, now_ms)
    return broker


def records(count: int, *, value_bytes: int = 10, keys: bool = True,
            timestamp_deltas: list[int] | None = None) -> list[Record]:
    out = []
    for i in range(count):
        key = b"k%d" % i if keys else None
        delta = timestamp_deltas[i] if timestamp_deltas is not None else i
        out.append(Record(i, delta, key, bytes([65 + i % 26]) * value_bytes))
    return out


def client_batch(count: int = 1, *, producer_id: int = NO_PRODUCER_ID,
                 producer_epoch: int | None = None, base_sequence: int | None = None,
                 codec: int = Codec.NONE, base_timestamp: int = START_MS,
                 value_bytes: int = 10, keys: bool = True, transactional: bool = False,
                 timestamp_deltas: list[int] | None = None) -> bytes:
    """A client batch as a producer sends it (base offset 0). With a producer id the epoch
    defaults to 0 and the sequence to 0."""
    if producer_id >= 0:
        epoch = 0 if producer_epoch is None else producer_epoch
        sequence = 0 if base_sequence is None else base_sequence
    else:
        epoch = NO_PRODUCER_EPOCH if producer_epoch is None else producer_epoch
        sequence = NO_SEQUENCE if base_sequence is None else base_sequence
    return build_batch(records(count, value_bytes=value_bytes, keys=keys,
                               timestamp_deltas=timestamp_deltas),
                       base_timestamp=base_timestamp, codec=codec, producer_id=producer_id,
                       producer_epoch=epoch, base_sequence=sequence,
                       transactional=transactional)


def append(broker: Broker, topic: str, raw: bytes, now_ms: int = START_MS,
           partition: int = 0) -> AppendResult:
    """Validate `raw` with the topic's rules and append it (what Produce does per partition)."""
    target = broker.partition(topic, partition)
    valid = validate(memoryview(bytearray(raw)), broker.rules(topic), now_ms)
    return target.append_client(valid.batches, valid.log_append_time_ms, now_ms)


def flush(partition: Partition) -> None:
    """What `server.kafka_flusher` does: run the flush plan, then mark it flushed."""
    plan = partition.log.flush_plan()
    plan.run(partition.fs)
    partition.log.mark_flushed(plan)


def slice_bytes(broker: Broker, piece: FileSlice | Any) -> bytes:
    """The bytes a fetch response's records field stands for."""
    if isinstance(piece, FileSlice):
        return broker.fs.read(piece.path, piece.position, piece.size)
    return bytes(piece)


def wire(message: Any, version: int) -> Any:
    """`message` as the peer would see it: encoded at `version`, decoded again."""
    data = message.to_bytes(version)
    decoded, pos = type(message).decode(memoryview(data), 0, version)
    assert pos == len(data)
    return decoded
