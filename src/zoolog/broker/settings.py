"""The broker's own settings, in Kafka's `server.properties` vocabulary.

`BrokerSettings` holds what the broker logic reads; the runtime builds it from command-line
flags and a `server.properties` file (`zoolog.server.kafka_config`). Topic-level defaults
(`log.retention.ms`, `log.segment.bytes`, ...) stay a string map under their broker key
names, as `topic_config.broker_default` resolves them. Every bound the broker enforces has
a name here, a default and a check in `validate()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zoolog.errors import ConfigError


@dataclass(slots=True)
class BrokerSettings:
    broker_id: int = 0
    host: str = "127.0.0.1"
    """Advertised host: the address clients are told to connect to."""
    port: int = 9092
    rack: str | None = None
    auto_create_topics_enable: bool = True
    num_partitions: int = 1
    default_replication_factor: int = 1
    delete_topic_enable: bool = True
    offsets_topic_num_partitions: int = 50
    offsets_topic_segment_bytes: int = 104_857_600
    offsets_commit_required_acks: int = -1
    producer_id_expiration_ms: int = 86_400_000
    fetch_sessions_max: int = 1000
    """`max.incremental.fetch.session.cache.slots`."""
    fetch_session_idle_ms: int = 120_000
    topic_defaults: dict[str, str] = field(default_factory=dict)
    """Broker-level topic defaults by their server.properties key (log.retention.ms, ...)."""

    partitions_per_topic_max: int = 10_000
    """Largest partition count a topic may have: each partition is a directory of files
    and a znode, so an unbounded count is a denial of service (Kafka has no such bound)."""
    partitions_max: int = 50_000
    """Most partitions the broker holds in all."""
    decompressed_batch_bytes_max: int = 128 << 20
    """Largest size a compressed batch may expand to while it is validated."""
    request_partitions_max: int = 100_000
    """Most topic-partitions one request may name (Produce, Fetch, ListOffsets, ...)."""

    def validate(self) -> None:
        if not 0 <= self.broker_id <= 0x7FFFFFFF:
            raise ConfigError(f"broker.id must be a non-negative int32, not {self.broker_id}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not a TCP port")
        if self.num_partitions < 1:
            raise ConfigError("num.partitions must be >= 1")
        if self.default_replication_factor < 1:
            raise ConfigError("default.replication.factor must be >= 1")
        if self.offsets_topic_num_partitions < 1:
            raise ConfigError("offsets.topic.num.partitions must be >= 1")
        if self.num_partitions > self.partitions_per_topic_max:
            raise ConfigError("num.partitions exceeds the partitions-per-topic limit "
                              f"({self.partitions_per_topic_max})")
        for name in ("partitions_per_topic_max", "partitions_max", "fetch_sessions_max",
                     "decompressed_batch_bytes_max", "request_partitions_max"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
