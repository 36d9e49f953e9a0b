"""Topic configuration: Kafka's per-topic keys, their types, defaults and validation.

Every key a topic accepts is one `ConfigDef` in `TOPIC_CONFIGS`, with Kafka's name, type,
default, range and the broker-level key (`server.properties`) that supplies the default, so
that DescribeConfigs, CreateTopics, AlterConfigs and IncrementalAlterConfigs agree on one
table. `validate_topic_configs` turns a user's string map into checked values or raises
`KafkaError(INVALID_CONFIG)` naming the key and why; unknown keys are refused the same way
(Kafka answers INVALID_CONFIG "Unknown topic config name").

Values are stored as the strings the user gave (what Kafka writes to `/config/topics/<t>`);
`effective` resolves a topic's overrides against the broker defaults into typed values.
Pure data and functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from zoolog.protocol.kafka.errors import Err, KafkaError

LONG_MAX = 9223372036854775807
INT_MAX = 2147483647


class ConfigType:
    """DescribeConfigs v3+ `config_type` values."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigSource:
    """DescribeConfigs v1+ `config_source` values."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_LOGGER_CONFIG = 2
    DYNAMIC_BROKER_CONFIG = 3
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


Value = bool | int | float | str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConfigDef:
    name: str
    type: int
    default: str
    doc: str
    broker_key: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[Value], str | None] | None = None
    """Extra check returning an error text, or None if the value is fine."""

    def parse(self, raw: str) -> Value:
        """The typed value of `raw`; KafkaError(INVALID_CONFIG) with the reason."""
        text = raw.strip()
        value: Value
        try:
            if self.type == ConfigType.BOOLEAN:
                lowered = text.lower()
                if lowered not in ("true", "false"):
                    raise ValueError("expected true or false")
                value = lowered == "true"
            elif self.type in (ConfigType.INT, ConfigType.SHORT, ConfigType.LONG):
                value = int(text)
                bound = INT_MAX if self.type == ConfigType.INT else LONG_MAX
                if not -bound - 1 <= value <= bound:
                    raise ValueError("out of range for its type")
            elif self.type == ConfigType.DOUBLE:
                value = float(text)
            elif self.type == ConfigType.LIST:
                items = tuple(item.strip() for item in text.split(",") if item.strip())
                if self.choices is not None:
                    for item in items:
                        if item not in self.choices:
                            raise ValueError(f"{item!r} is not one of {', '.join(self.choices)}")
                value = items
            else:
                value = text
                if self.choices is not None and text not in self.choices:
                    raise ValueError(f"expected one of {', '.join(self.choices)}")
        except ValueError as exc:
            raise KafkaError(Err.INVALID_CONFIG,
                             f"Invalid value {raw} for configuration {self.name}: {exc}") from exc
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise KafkaError(Err.INVALID_CONFIG,
                                 f"Invalid value {raw} for configuration {self.name}: "
                                 f"Value must be at least {_number(self.minimum)}")
            if self.maximum is not None and value > self.maximum:
                raise KafkaError(Err.INVALID_CONFIG,
                                 f"Invalid value {raw} for configuration {self.name}: "
                                 f"Value must be no more than {_number(self.maximum)}")
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise KafkaError(Err.INVALID_CONFIG,
                                 f"Invalid value {raw} for configuration {self.name}: {problem}")
        return value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _throttled_replicas(value: Value) -> str | None:
    """Kafka's ThrottledReplicaListValidator: `*`, or `partition:broker` pairs."""
    items = value if isinstance(value, tuple) else (str(value),)
    if items == ("*",):
        return None
    for item in items:
        partition, sep, broker = item.partition(":")
        if not sep or not partition.strip().isdigit() or not broker.strip().isdigit():
            return ("must be the literal '*' or a list of replicas in the form "
                    "[PartitionId]:[BrokerId],[PartitionId]:[BrokerId],...")
    return None


def _cleanup_policy(value: Value) -> str | None:
    return None if value else "cleanup.policy must list compact and/or delete"


COMPRESSION_TYPES = ("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")

_DEFS = [
    ConfigDef("cleanup.policy", ConfigType.LIST, "delete",
              "delete (drop old segments by retention) and/or compact (keep the last record "
              "per key)", "log.cleanup.policy", choices=("compact", "delete"),
              check=_cleanup_policy),
    ConfigDef("compression.type", ConfigType.STRING, "producer",
              "codec batches are stored with; producer keeps what the producer sent",
              "compression.type", choices=COMPRESSION_TYPES),
    ConfigDef("compression.gzip.level", ConfigType.INT, "-1",
              "gzip level when the broker recompresses (-1 = codec default)",
              "compression.gzip.level", minimum=-1, maximum=9),
    ConfigDef("compression.lz4.level", ConfigType.INT, "9",
              "lz4 level when the broker recompresses", "compression.lz4.level",
              minimum=1, maximum=17),
    ConfigDef("compression.zstd.level", ConfigType.INT, "3",
              "zstd level when the broker recompresses", "compression.zstd.level",
              minimum=-131072, maximum=22),
    ConfigDef("delete.retention.ms", ConfigType.LONG, "86400000",
              "how long tombstones stay readable on compacted topics",
              "log.cleaner.delete.retention.ms", minimum=0),
    ConfigDef("file.delete.delay.ms", ConfigType.LONG, "60000",
              "delay before a deleted segment's files are removed",
              "log.segment.delete.delay.ms", minimum=0),
    ConfigDef("flush.messages", ConfigType.LONG, str(LONG_MAX),
              "fsync the log after this many appended messages (acks=all always fsyncs "
              "before answering)", "log.flush.interval.messages", minimum=1),
    ConfigDef("flush.ms", ConfigType.LONG, str(LONG_MAX),
              "fsync the log when its oldest unflushed append is this old",
              "log.flush.interval.ms", minimum=0),
    ConfigDef("follower.replication.throttled.replicas", ConfigType.LIST, "",
              "replicas whose follower traffic is throttled (accepted, unused on one node)",
              "follower.replication.throttled.replicas", check=_throttled_replicas),
    ConfigDef("index.interval.bytes", ConfigType.INT, "4096",
              "bytes of log between two offset-index entries", "log.index.interval.bytes",
              minimum=0),
    ConfigDef("leader.replication.throttled.replicas", ConfigType.LIST, "",
              "replicas whose leader traffic is throttled (accepted, unused on one node)",
              "leader.replication.throttled.replicas", check=_throttled_replicas),
    ConfigDef("max.compaction.lag.ms", ConfigType.LONG, str(LONG_MAX),
              "longest a record may stay uncompacted", "log.cleaner.max.compaction.lag.ms",
              minimum=1),
    ConfigDef("max.message.bytes", ConfigType.INT, "1048588",
              "largest record batch the topic accepts", "message.max.bytes", minimum=0),
    ConfigDef("message.timestamp.after.max.ms", ConfigType.LONG, str(LONG_MAX),
              "how far in the future a record timestamp may be (CreateTime)",
              "log.message.timestamp.after.max.ms", minimum=0),
    ConfigDef("message.timestamp.before.max.ms", ConfigType.LONG, str(LONG_MAX),
              "how far in the past a record timestamp may be (CreateTime)",
              "log.message.timestamp.before.max.ms", minimum=0),
    ConfigDef("message.timestamp.type", ConfigType.STRING, "CreateTime",
              "CreateTime keeps the producer's timestamps, LogAppendTime stamps the broker's",
              "log.message.timestamp.type", choices=("CreateTime", "LogAppendTime")),
    ConfigDef("min.cleanable.dirty.ratio", ConfigType.DOUBLE, "0.5",
              "share of uncompacted log that triggers compaction",
              "log.cleaner.min.cleanable.ratio", minimum=0, maximum=1),
    ConfigDef("min.compaction.lag.ms", ConfigType.LONG, "0",
              "shortest time a record stays uncompacted", "log.cleaner.min.compaction.lag.ms",
              minimum=0),
    ConfigDef("min.insync.replicas", ConfigType.INT, "1",
              "in-sync replicas an acks=all write needs", "min.insync.replicas", minimum=1),
    ConfigDef("preallocate", ConfigType.BOOLEAN, "false",
              "preallocate segment files (accepted; zoolog does not preallocate log segments)",
              "log.preallocate"),
    ConfigDef("retention.bytes", ConfigType.LONG, "-1",
              "largest size of a partition before old segments go (-1 = no limit)",
              "log.retention.bytes"),
    ConfigDef("retention.ms", ConfigType.LONG, "604800000",
              "age after which old segments go (-1 = forever)", "log.retention.ms",
              minimum=-1),
    ConfigDef("segment.bytes", ConfigType.INT, "1073741824", "size of one log segment file",
              "log.segment.bytes", minimum=14),
    ConfigDef("segment.index.bytes", ConfigType.INT, "10485760",
              "size of one offset index; a full index rolls the segment",
              "log.index.size.max.bytes", minimum=4),
    ConfigDef("segment.jitter.ms", ConfigType.LONG, "0",
              "random jitter subtracted from segment.ms", "log.roll.jitter.ms", minimum=0),
    ConfigDef("segment.ms", ConfigType.LONG, "604800000",
              "age after which the active segment is rolled", "log.roll.ms", minimum=1),
    ConfigDef("unclean.leader.election.enable", ConfigType.BOOLEAN, "false",
              "elect an out-of-sync replica as leader (accepted, unused on one node)",
              "unclean.leader.election.enable"),
    ConfigDef("message.downconversion.enable", ConfigType.BOOLEAN, "true",
              "down-convert for old fetchers (accepted; zoolog serves magic 2 only)",
              "log.message.downconversion.enable"),
]

TOPIC_CONFIGS: dict[str, ConfigDef] = {d.name: d for d in _DEFS}


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Check a user's topic config overrides; the checked string map, or INVALID_CONFIG.
    A None value is refused (CreateTopics and AlterConfigs carry no "unset" meaning)."""
    checked: dict[str, str] = {}
    for name, raw in configs.items():
        definition = TOPIC_CONFIGS.get(name)
        if definition is None:
            raise KafkaError(Err.INVALID_CONFIG, f"Unknown topic config name: {name}")
        if raw is None:
            raise KafkaError(Err.INVALID_CONFIG,
                             f"Null value not supported for topic configs: {name}")
        definition.parse(raw)
        checked[name] = raw.strip()
    _check_relations(checked)
    return checked


def _check_relations(configs: Mapping[str, str]) -> None:
    if "min.compaction.lag.ms" in configs and "max.compaction.lag.ms" in configs:
        low = int(configs["min.compaction.lag.ms"])
        high = int(configs["max.compaction.lag.ms"])
        if low > high:
            raise KafkaError(Err.INVALID_CONFIG,
                             f"conflict topic config setting min.compaction.lag.ms ({low}) "
                             f"> max.compaction.lag.ms ({high})")


def broker_default(definition: ConfigDef, broker: Mapping[str, str]) -> tuple[str, int]:
    """A key's default for new topics: the broker's setting if it has one, else Kafka's
    default; with its DescribeConfigs source."""
    if definition.broker_key and definition.broker_key in broker:
        return broker[definition.broker_key], ConfigSource.STATIC_BROKER_CONFIG
    return definition.default, ConfigSource.DEFAULT_CONFIG


def effective(overrides: Mapping[str, str], broker: Mapping[str, str]) -> dict[str, Value]:
    """Every topic key resolved: the topic's override, else the broker default, typed."""
    out: dict[str, Value] = {}
    for name, definition in TOPIC_CONFIGS.items():
        raw = overrides.get(name)
        if raw is None:
            raw, _ = broker_default(definition, broker)
        out[name] = definition.parse(raw)
    return out
