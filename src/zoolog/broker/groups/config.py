"""The group coordinator's settings (`GroupConfig`), Kafka's names and defaults, validated
on construction and readable from server.properties keys.

Owns the bounds and their checks (a bad value is a ConfigError). Never: behaviour that
depends on the settings (the coordinator's), I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import ClassVar

from zoolog.errors import ConfigError

_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """The group coordinator's settings, Kafka's names with `.` as `_` and Kafka's defaults."""

    group_min_session_timeout_ms: int = 6000
    group_max_session_timeout_ms: int = 1_800_000
    group_initial_rebalance_delay_ms: int = 3000
    group_max_size: int = _INT32_MAX
    offsets_topic_num_partitions: int = 50
    offset_metadata_max_bytes: int = 4096
    offsets_retention_minutes: int = 10080
    offsets_retention_check_interval_ms: int = 600_000
    group_new_member_join_timeout_ms: int = 300_000
    """How long a new member's parked JoinGroup keeps it alive (Kafka's internal
    `NEW_MEMBER_JOIN_TIMEOUT_MS`, KIP-394; not a Kafka property)."""

    PROPERTIES: ClassVar[dict[str, str]] = {
        "group.min.session.timeout.ms": "group_min_session_timeout_ms",
        "group.max.session.timeout.ms": "group_max_session_timeout_ms",
        "group.initial.rebalance.delay.ms": "group_initial_rebalance_delay_ms",
        "group.max.size": "group_max_size",
        "offsets.topic.num.partitions": "offsets_topic_num_partitions",
        "offset.metadata.max.bytes": "offset_metadata_max_bytes",
        "offsets.retention.minutes": "offsets_retention_minutes",
        "offsets.retention.check.interval.ms": "offsets_retention_check_interval_ms",
    }
    """server.properties key -> field."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{f.name} must be an int, not {value!r}")
        if self.group_min_session_timeout_ms < 0:
            raise ConfigError("group.min.session.timeout.ms must be >= 0")
        if self.group_max_session_timeout_ms < self.group_min_session_timeout_ms:
            raise ConfigError("group.max.session.timeout.ms must be >= "
                              "group.min.session.timeout.ms")
        if self.group_initial_rebalance_delay_ms < 0:
            raise ConfigError("group.initial.rebalance.delay.ms must be >= 0")
        if self.group_max_size < 1:
            raise ConfigError("group.max.size must be >= 1")
        if self.offsets_topic_num_partitions < 1:
            raise ConfigError("offsets.topic.num.partitions must be >= 1")
        if self.offset_metadata_max_bytes < 0:
            raise ConfigError("offset.metadata.max.bytes must be >= 0")
        if self.offsets_retention_minutes < 1:
            raise ConfigError("offsets.retention.minutes must be >= 1")
        if self.offsets_retention_check_interval_ms < 1:
            raise ConfigError("offsets.retention.check.interval.ms must be >= 1")
        if self.group_new_member_join_timeout_ms < 1:
            raise ConfigError("group_new_member_join_timeout_ms must be >= 1")

    @property
    def offsets_retention_ms(self) -> int:
        return self.offsets_retention_minutes * 60_000

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> GroupConfig:
        """The settings named in `properties` (server.properties keys; others ignored)."""
        return cls(**int_properties(properties, cls.PROPERTIES))


def int_properties(properties: Mapping[str, str], names: Mapping[str, str]) -> dict[str, int]:
    """field -> int value of every key of `names` (server.properties key -> field) present
    in `properties`; a value that is not an integer is a ConfigError."""
    values: dict[str, int] = {}
    for key, name in names.items():
        if key in properties:
            try:
                values[name] = int(properties[key].strip())
            except ValueError:
                raise ConfigError(f"{key}: not an integer: {properties[key]!r}") from None
    return values
