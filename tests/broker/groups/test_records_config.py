"""`__consumer_offsets` record bytes, `partition_for` against Java's String.hashCode, and
GroupConfig."""

from __future__ import annotations

import struct

import pytest

from zoolog.broker.groups import (
    CorruptRecordError,
    GroupConfig,
    GroupRecord,
    OffsetRecord,
    decode_record,
    java_string_hash,
    partition_for,
)
from zoolog.broker.groups.records import (
    group_metadata_key,
    group_metadata_value,
    offset_commit_key,
    offset_commit_value,
)
from zoolog.errors import ConfigError
from zoolog.protocol.kafka._generated.coordinator_records import (
    GroupMetadataValue,
    OffsetCommitValue,
)


def _java_hash_by_hand(text: str) -> int:
    """s[0]*31^(n-1) + ... + s[n-1] over UTF-16 code units, wrapped to a signed int32."""
    units: list[int] = []
    for ch in text:
        cp = ord(ch)
        if cp > 0xFFFF:
            cp -= 0x10000
            units += [0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)]
        else:
            units.append(cp)
    n = len(units)
    total = sum(u * 31 ** (n - 1 - i) for i, u in enumerate(units))
    total %= 2**32
    return total - 2**32 if total >= 2**31 else total


@pytest.mark.parametrize(("text", "expected"), [
    ("", 0),
    ("a", 97),
    ("ab", 97 * 31 + 98),
    ("group", 98629247),
    ("console-consumer-1", _java_hash_by_hand("console-consumer-1")),
    ("polygenelubricants", -(2**31)),  # Integer.MIN_VALUE
    ("\U0001F600", 0xD83D * 31 + 0xDE00),  # a surrogate pair
    ("é" * 40, _java_hash_by_hand("é" * 40)),
])
def test_java_string_hash(text: str, expected: int) -> None:
    assert java_string_hash(text) == expected == _java_hash_by_hand(text)


def test_partition_for() -> None:
    assert partition_for("", 50) == 0
    assert partition_for("a", 50) == 97 % 50
    assert partition_for("group", 50) == 98629247 % 50
    assert partition_for("polygenelubricants", 50) == 0  # Utils.abs(MIN_VALUE) == 0
    negative = next(t for t in (f"g{i}" * 7 for i in range(100)) if java_string_hash(t) < 0)
    assert partition_for(negative, 50) == -java_string_hash(negative) % 50
    assert partition_for(negative, 50) == abs(java_string_hash(negative)) % 50


def test_offset_commit_record_bytes() -> None:
    key = offset_commit_key("grp", "top", 7)
    assert key == struct.pack(">hh3sh3si", 1, 3, b"grp", 3, b"top", 7)
    value = offset_commit_value(42, 5, "md", 1000, None)
    assert value == struct.pack(">hqih2sq", 3, 42, 5, 2, b"md", 1000)
    expiring = offset_commit_value(42, 5, "md", 1000, 2000)
    assert expiring == struct.pack(">hqh2sqq", 1, 42, 2, b"md", 1000, 2000)  # no epoch in v1
    record = decode_record(key, value)
    assert isinstance(record, OffsetRecord)
    assert (record.group, record.topic, record.partition) == ("grp", "top", 7)
    assert record.value is not None
    assert (record.value.offset, record.value.leader_epoch, record.value.metadata,
            record.value.commit_timestamp, record.value.expire_timestamp) == (42, 5, "md", 1000, -1)
    tombstone = decode_record(key, None)
    assert isinstance(tombstone, OffsetRecord) and tombstone.value is None


def test_group_metadata_record_round_trip() -> None:
    key = group_metadata_key("grp")
    assert key == struct.pack(">hh3s", 2, 3, b"grp")
    value = GroupMetadataValue(protocol_type="consumer", generation=3, protocol="range",
                               leader="m1", current_state_timestamp=99, members=[
                                   GroupMetadataValue.MemberMetadata(
                                       member_id="m1", group_instance_id="i", client_id="c",
                                       client_host="/h", rebalance_timeout=3, session_timeout=4,
                                       subscription=b"s", assignment=b"a")])
    data = group_metadata_value(value)
    assert data[:2] == b"\x00\x03"
    record = decode_record(key, data)
    assert isinstance(record, GroupRecord) and record.group == "grp"
    assert record.value == value


@pytest.mark.parametrize("version", range(0, 5))
def test_every_offset_commit_value_version_decodes(version: int) -> None:
    body = OffsetCommitValue(offset=1, metadata="m", commit_timestamp=2,
                             leader_epoch=3 if version >= 3 else -1,
                             expire_timestamp=4 if version == 1 else -1)
    record = decode_record(offset_commit_key("g", "t", 0),
                           struct.pack(">h", version) + body.to_bytes(version))
    assert isinstance(record, OffsetRecord) and record.value == body
    old_key = struct.pack(">h", 0) + offset_commit_key("g", "t", 0)[2:]  # key v0
    assert isinstance(decode_record(old_key, None), OffsetRecord)


@pytest.mark.parametrize("version", range(0, 5))
def test_every_group_metadata_value_version_decodes(version: int) -> None:
    member = GroupMetadataValue.MemberMetadata(
        member_id="m", group_instance_id="i" if version >= 3 else None, client_id="c",
        client_host="h", rebalance_timeout=5 if version >= 1 else -1, session_timeout=6,
        subscription=b"s", assignment=b"a")
    body = GroupMetadataValue(protocol_type="consumer", generation=1, protocol="range",
                              leader="m", current_state_timestamp=7 if version >= 2 else -1,
                              members=[member])
    record = decode_record(group_metadata_key("g"),
                           struct.pack(">h", version) + body.to_bytes(version))
    assert isinstance(record, GroupRecord) and record.value == body


def test_newer_flexible_versions_are_read_as_the_newest_known() -> None:
    body = OffsetCommitValue(offset=1, metadata="m", commit_timestamp=2, leader_epoch=3)
    record = decode_record(offset_commit_key("g", "t", 0),
                           struct.pack(">h", 9) + body.to_bytes(4))
    assert isinstance(record, OffsetRecord) and record.value == body


def test_records_this_coordinator_does_not_read_and_garbage() -> None:
    assert decode_record(struct.pack(">h", 3) + b"whatever", b"x") is None  # KIP-848 records
    for key, value in [(b"", None), (b"\x00", None), (b"\xff\xff", None),
                       (offset_commit_key("g", "t", 0)[:-1], None),
                       (offset_commit_key("g", "t", 0) + b"x", None),
                       (offset_commit_key("g", "t", 0), b"\x00\x03\x00"),
                       (group_metadata_key("g"), b"\x00\x00"),
                       (offset_commit_key("g", "t", 0), b"\xff\xfe" + b"\x00" * 30)]:
        with pytest.raises(CorruptRecordError):
            decode_record(key, value)


def test_config_defaults_are_kafkas() -> None:
    config = GroupConfig()
    assert (config.group_min_session_timeout_ms, config.group_max_session_timeout_ms,
            config.group_initial_rebalance_delay_ms, config.group_max_size,
            config.offsets_topic_num_partitions, config.offset_metadata_max_bytes,
            config.offsets_retention_minutes, config.offsets_retention_check_interval_ms) == (
        6000, 1_800_000, 3000, 2**31 - 1, 50, 4096, 10080, 600_000)
    assert config.offsets_retention_ms == 7 * 24 * 3600 * 1000


def test_config_from_properties_and_validation() -> None:
    config = GroupConfig.from_properties({"group.initial.rebalance.delay.ms": "0",
                                          "offsets.topic.num.partitions": " 3 ",
                                          "log.dirs": "/tmp/x"})
    assert config.group_initial_rebalance_delay_ms == 0
    assert config.offsets_topic_num_partitions == 3
    with pytest.raises(ConfigError):
        GroupConfig.from_properties({"group.max.size": "many"})
    with pytest.raises(ConfigError):
        GroupConfig(group_min_session_timeout_ms=10, group_max_session_timeout_ms=5)
    with pytest.raises(ConfigError):
        GroupConfig(offsets_topic_num_partitions=0)
    with pytest.raises(ConfigError):
        GroupConfig(group_max_size=0)
