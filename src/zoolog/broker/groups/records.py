"""The records of `__consumer_offsets`, in Kafka's own formats, so that a Kafka tool can read them.

A record is a key and a value (None: a tombstone, which compaction keeps until it has
removed every older record of that key). Both start with an int16 version that names the
schema of what follows (`group-coordinator/.../GroupCoordinatorRecordSerde`):

| key version | key schema | value schema | zoolog writes |
| --- | --- | --- | --- |
| 0, 1 | `OffsetCommitKey {group, topic, partition}` | `OffsetCommitValue` v0-4 | v1, v3 (*) |
| 2 | `GroupMetadataKey {group}` | `GroupMetadataValue` v0-4 | v2, v3 |
| 3+ | records of KIP-848 consumer groups | - | never; read as None |

(*) value v1 when the commit carries an expire timestamp: only v1 has that field (Kafka's
`offsetCommitValueVersion`).

Values of a version newer than the schemas know are read as the newest known version when
that version is flexible (KIP-915: newer versions only add tagged fields); anything else that
does not decode raises `CorruptRecordError`.

Owns: the byte layout only. Knows nothing of groups or offsets beyond the fields; does no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TypeVar

from zoolog.errors import KafkaDecodeError, ZoologError
from zoolog.protocol.kafka._generated.coordinator_records import (
    GroupMetadataKey,
    GroupMetadataValue,
    OffsetCommitKey,
    OffsetCommitValue,
)

__all__ = [
    "GROUP_METADATA_KEY_VERSION",
    "GROUP_METADATA_VALUE_VERSION",
    "OFFSET_COMMIT_KEY_VERSION",
    "OFFSET_COMMIT_VALUE_VERSION",
    "OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRE",
    "CorruptRecordError",
    "GroupRecord",
    "OffsetRecord",
    "decode_record",
    "group_metadata_key",
    "group_metadata_value",
    "offset_commit_key",
    "offset_commit_value",
]

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
OFFSET_COMMIT_VALUE_VERSION = 3
OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRE = 1
GROUP_METADATA_VALUE_VERSION = 3

_VERSION = struct.Struct(">h")
_K = TypeVar("_K", OffsetCommitKey, GroupMetadataKey)
_V = TypeVar("_V", OffsetCommitValue, GroupMetadataValue)


class CorruptRecordError(ZoologError):
    """A `__consumer_offsets` record does not decode: a damaged log, or a format this
    coordinator cannot read. Loading stops rather than guess."""


@dataclass(frozen=True, slots=True)
class OffsetRecord:
    """A committed offset (`value` None: the offset was deleted)."""

    group: str
    topic: str
    partition: int
    value: OffsetCommitValue | None


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """A group's metadata (`value` None: the group was deleted)."""

    group: str
    value: GroupMetadataValue | None


def offset_commit_key(group: str, topic: str, partition: int) -> bytes:
    body = OffsetCommitKey(group=group, topic=topic, partition=partition)
    return _VERSION.pack(OFFSET_COMMIT_KEY_VERSION) + body.to_bytes(OFFSET_COMMIT_KEY_VERSION)


def group_metadata_key(group: str) -> bytes:
    body = GroupMetadataKey(group=group)
    return _VERSION.pack(GROUP_METADATA_KEY_VERSION) + body.to_bytes(GROUP_METADATA_KEY_VERSION)


def offset_commit_value(
    offset: int,
    leader_epoch: int,
    metadata: str,
    commit_timestamp_ms: int,
    expire_timestamp_ms: int | None,
) -> bytes:
    """Kafka's choice of version: 1 when there is an expire timestamp (the only version with
    that field), else 3 (the one with the leader epoch)."""
    if expire_timestamp_ms is None:
        version = OFFSET_COMMIT_VALUE_VERSION
        body = OffsetCommitValue(offset=offset, leader_epoch=leader_epoch, metadata=metadata,
                                 commit_timestamp=commit_timestamp_ms)
    else:
        version = OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRE
        body = OffsetCommitValue(offset=offset, metadata=metadata,
                                 commit_timestamp=commit_timestamp_ms,
                                 expire_timestamp=expire_timestamp_ms)
    return _VERSION.pack(version) + body.to_bytes(version)


def group_metadata_value(value: GroupMetadataValue) -> bytes:
    version = GROUP_METADATA_VALUE_VERSION
    return _VERSION.pack(version) + value.to_bytes(version)


def decode_record(key: bytes, value: bytes | None) -> OffsetRecord | GroupRecord | None:
    """The record `key`/`value` as read back from the log; None for record types that a
    classic coordinator does not read (key version 3 and up)."""
    view = memoryview(key)
    key_version = _read_version(view, "key")
    if key_version in (0, 1):
        okey = _decode_exact(OffsetCommitKey, view, key_version, "OffsetCommitKey")
        ovalue = None if value is None else _decode_value(OffsetCommitValue, value)
        return OffsetRecord(okey.group, okey.topic, okey.partition, ovalue)
    if key_version == GROUP_METADATA_KEY_VERSION:
        gkey = _decode_exact(GroupMetadataKey, view, key_version, "GroupMetadataKey")
        gvalue = None if value is None else _decode_value(GroupMetadataValue, value)
        return GroupRecord(gkey.group, gvalue)
    if key_version < 0:
        raise CorruptRecordError(f"__consumer_offsets key with negative version {key_version}")
    return None


def _read_version(view: memoryview, what: str) -> int:
    if len(view) < 2:
        raise CorruptRecordError(f"__consumer_offsets {what} of {len(view)} bytes")
    version: int = _VERSION.unpack_from(view, 0)[0]
    return version


def _decode_exact(cls: type[_K], view: memoryview, version: int, name: str) -> _K:
    try:
        obj, pos = cls.decode(view, 2, version)
    except KafkaDecodeError as exc:
        raise CorruptRecordError(f"{name} v{version}: {exc}") from exc
    if pos != len(view):
        raise CorruptRecordError(f"{name} v{version}: {len(view) - pos} bytes after the key")
    return obj


def _decode_value(cls: type[_V], value: bytes) -> _V:
    view = memoryview(value)
    version = _read_version(view, "value")
    low, high = cls.VALID_VERSIONS
    flexible_from = cls.FLEXIBLE_FROM
    if version > high and flexible_from is not None and high >= flexible_from:
        version = high  # KIP-915: a newer version is the newest known one plus tagged fields
    if version < low or version > high:
        raise CorruptRecordError(f"{cls.__name__} with unknown version {version}")
    try:
        obj, _pos = cls.decode(view, 2, version)
    except KafkaDecodeError as exc:
        raise CorruptRecordError(f"{cls.__name__} v{version}: {exc}") from exc
    return obj
