"""`LogConfig`: the per-topic settings the log store consumes, with Kafka's defaults.

Owns the mapping between Kafka's topic config keys (`segment.bytes`, ...) and the typed
fields the log reads. It never validates values (the broker does, and answers
INVALID_CONFIG); `from_topic_config` only converts the broker's already checked strings or
numbers. A `LogConfig` is a value: a config change builds a new one and hands it to
`PartitionLog.update_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

LONG_MAX = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class LogConfig:
    """One field per topic config the log uses; defaults are Kafka's."""

    segment_bytes: int = 1073741824
    """Roll the active segment before it would grow past this size."""
    segment_ms: int = 604800000
    """Roll the active segment once it is this old (by its first batch's timestamp)."""
    segment_index_bytes: int = 10485760
    """Roll when the offset index (8 bytes an entry) or time index (12) would outgrow this."""
    index_interval_bytes: int = 4096
    """Bytes of batches between two index entries."""
    retention_ms: int = 604800000
    """Delete segments whose newest timestamp is older than this; -1 keeps them forever."""
    retention_bytes: int = -1
    """Delete the oldest segments while the log is larger than this; -1: no size bound."""
    cleanup_policy: str = "delete"
    """"delete", "compact", or both ("compact,delete")."""
    min_cleanable_dirty_ratio: float = 0.5
    delete_retention_ms: int = 86400000
    """How long a tombstone stays readable after compaction has first seen it."""
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    file_delete_delay_ms: int = 60000
    """How long deleted segments stay on disk (renamed `.deleted`) for in-flight reads."""
    flush_messages: int = LONG_MAX
    """Flush (fsync) once this many offsets were appended since the last flush."""
    flush_ms: int = LONG_MAX
    max_message_bytes: int = 1048588
    message_timestamp_type: str = "CreateTime"
    segment_jitter_ms: int = 0
    preallocate: bool = False
    """Accepted and ignored: segments grow by appends (documented deviation)."""

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy.replace(" ", "").split(",")

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy.replace(" ", "").split(",")

    @property
    def offset_index_entries_max(self) -> int:
        return max(1, self.segment_index_bytes // 8)

    @property
    def time_index_entries_max(self) -> int:
        return max(1, self.segment_index_bytes // 12)

    @classmethod
    def from_topic_config(cls, config: Mapping[str, object]) -> LogConfig:
        """A LogConfig from Kafka keys (`segment.bytes`, ...); keys it does not use are
        ignored, missing ones take Kafka's default."""
        values: dict[str, object] = {}
        for key, field_name in KAFKA_KEYS.items():
            if key not in config:
                continue
            raw = config[key]
            kind = _FIELD_TYPES[field_name]
            if kind is bool:
                values[field_name] = raw if isinstance(raw, bool) else str(raw).lower() == "true"
            elif kind is int:
                values[field_name] = int(str(raw))
            elif kind is float:
                values[field_name] = float(str(raw))
            else:
                values[field_name] = str(raw)
        return replace(cls(), **values)  # type: ignore[arg-type]

    def to_topic_config(self) -> dict[str, str]:
        """Kafka keys to string values (what DescribeConfigs shows)."""
        out: dict[str, str] = {}
        for key, field_name in KAFKA_KEYS.items():
            value = getattr(self, field_name)
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return out


KAFKA_KEYS: dict[str, str] = {
    "segment.bytes": "segment_bytes",
    "segment.ms": "segment_ms",
    "segment.index.bytes": "segment_index_bytes",
    "index.interval.bytes": "index_interval_bytes",
    "retention.ms": "retention_ms",
    "retention.bytes": "retention_bytes",
    "cleanup.policy": "cleanup_policy",
    "min.cleanable.dirty.ratio": "min_cleanable_dirty_ratio",
    "delete.retention.ms": "delete_retention_ms",
    "min.compaction.lag.ms": "min_compaction_lag_ms",
    "max.compaction.lag.ms": "max_compaction_lag_ms",
    "file.delete.delay.ms": "file_delete_delay_ms",
    "flush.messages": "flush_messages",
    "flush.ms": "flush_ms",
    "max.message.bytes": "max_message_bytes",
    "message.timestamp.type": "message_timestamp_type",
    "segment.jitter.ms": "segment_jitter_ms",
    "preallocate": "preallocate",
}
"""Kafka topic config key -> LogConfig field."""

_FIELD_TYPES: dict[str, type] = {
    f.name: {"int": int, "float": float, "str": str, "bool": bool}[str(f.type)]
    for f in fields(LogConfig)
}
