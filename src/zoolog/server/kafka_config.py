"""The broker node's configuration and Kafka's `server.properties`.

`KafkaNodeConfig` holds what the runtime needs (where to listen, the data directory, the
coordination service to keep metadata in, the flush policy) plus the broker logic's
`BrokerSettings` and `GroupConfig`. `load_server_properties` reads a Kafka
`server.properties` file: the keys that mean the same in zoolog keep their meaning
(`broker.id`, `listeners`, `advertised.listeners`, `log.dirs`, `zookeeper.connect`,
`num.partitions`, `auto.create.topics.enable`, `log.retention.hours`, `group.*`, ...); the
rest are reported as ignored. Java properties syntax: `key=value` or `key: value`, `#`/`!`
comments, backslash line continuations.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from zoolog.broker.groups.coordinator import GroupConfig
from zoolog.broker.settings import BrokerSettings
from zoolog.broker.topic_config import TOPIC_CONFIGS
from zoolog.broker.txn import TxnConfig
from zoolog.errors import ConfigError
from zoolog.server.properties import parse_properties

DEFAULT_PORT = 9092


@dataclass(slots=True)
class KafkaNodeConfig:
    data_dir: Path = Path("zoolog-data") / "kafka"
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = DEFAULT_PORT
    """Port to listen on (0: any free port; the bound one is advertised)."""
    advertised_host: str | None = None
    advertised_port: int | None = None
    zookeeper: str = "127.0.0.1:2181"
    zookeeper_session_timeout_ms: int = 18_000
    sync_writes: bool = True
    """fsync before answering acks=all produces and offset commits; off (--no-fsync) keeps
    them in the page cache like acks=1."""
    retention_check_interval_ms: int = 300_000
    cleaner_interval_ms: int = 15_000
    settings: BrokerSettings = field(default_factory=BrokerSettings)
    groups: GroupConfig = field(default_factory=GroupConfig)
    txn: TxnConfig = field(default_factory=TxnConfig)
    unknown_keys: set[str] = field(default_factory=set)

    def validate(self) -> None:
        self.settings.validate()
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not a TCP port")


def _listener(value: str) -> tuple[str, int]:
    """The host and port of the first PLAINTEXT listener (`PLAINTEXT://host:port`)."""
    for item in value.split(","):
        item = item.strip()
        if "://" not in item:
            raise ConfigError(f"listener {item!r} is not NAME://host:port")
        name, address = item.split("://", 1)
        if name.upper() != "PLAINTEXT":
            continue
        host, _, port = address.rpartition(":")
        try:
            return host, int(port)
        except ValueError as exc:
            raise ConfigError(f"listener {item!r} has no port") from exc
    raise ConfigError(f"no PLAINTEXT listener in {value!r} (zoolog serves PLAINTEXT only)")


def _bool(key: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ConfigError(f"{key} must be true or false, not {value!r}")
    return value.lower() == "true"


def _int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{key} must be an integer, not {value!r}") from exc


_BROKER_TOPIC_KEYS = {d.broker_key for d in TOPIC_CONFIGS.values() if d.broker_key}
_TIME_KEYS = {"log.retention": "log.retention.ms", "log.roll": "log.roll.ms"}


def apply_server_properties(config: KafkaNodeConfig, values: dict[str, str]) -> None:
    """Fold `server.properties` keys into `config` (unknown keys go to unknown_keys)."""
    settings = config.settings
    groups: dict[str, int] = {}
    txn: dict[str, str] = {}
    for key, value in values.items():
        if key == "broker.id":
            settings.broker_id = _int(key, value)
        elif key == "listeners":
            host, port = _listener(value)
            config.host = host or "0.0.0.0"
            config.port = port
        elif key == "advertised.listeners":
            host, port = _listener(value)
            config.advertised_host, config.advertised_port = host, port
        elif key in ("log.dirs", "log.dir"):
            config.data_dir = Path(value.split(",")[0].strip())
        elif key == "zookeeper.connect":
            config.zookeeper = value
        elif key == "zookeeper.session.timeout.ms":
            config.zookeeper_session_timeout_ms = _int(key, value)
        elif key == "broker.rack":
            settings.rack = value
        elif key == "auto.create.topics.enable":
            settings.auto_create_topics_enable = _bool(key, value)
        elif key == "delete.topic.enable":
            settings.delete_topic_enable = _bool(key, value)
        elif key == "num.partitions":
            settings.num_partitions = _int(key, value)
        elif key == "default.replication.factor":
            settings.default_replication_factor = _int(key, value)
        elif key == "offsets.topic.num.partitions":
            settings.offsets_topic_num_partitions = _int(key, value)
        elif key == "offsets.topic.segment.bytes":
            settings.offsets_topic_segment_bytes = _int(key, value)
        elif key == "producer.id.expiration.ms":
            settings.producer_id_expiration_ms = _int(key, value)
        elif key == "max.incremental.fetch.session.cache.slots":
            settings.fetch_sessions_max = _int(key, value)
        elif key == "log.retention.check.interval.ms":
            config.retention_check_interval_ms = _int(key, value)
        elif key in ("group.min.session.timeout.ms", "group.max.session.timeout.ms",
                     "group.initial.rebalance.delay.ms", "group.max.size",
                     "offset.metadata.max.bytes", "offsets.retention.minutes",
                     "offsets.retention.check.interval.ms"):
            groups[key] = _int(key, value)
        elif key in TxnConfig.PROPERTIES and key != "offsets.topic.num.partitions":
            txn[key] = value
        elif key in ("offsets.topic.replication.factor",
                     "transaction.state.log.replication.factor"):
            if _int(key, value) < 1:
                raise ConfigError(f"{key} must be >= 1")
        elif key in _BROKER_TOPIC_KEYS:
            settings.topic_defaults[key] = value
        elif any(key.startswith(prefix + ".") for prefix in _TIME_KEYS):
            prefix = key.rsplit(".", 1)[0]
            unit = key.rsplit(".", 1)[1]
            factor = {"ms": 1, "minutes": 60_000, "hours": 3_600_000}.get(unit)
            if factor is None:
                config.unknown_keys.add(key)
                continue
            target = _TIME_KEYS[prefix]
            # a finer unit wins, as in Kafka (ms over minutes over hours)
            finer = {"hours": 0, "minutes": 1, "ms": 2}[unit]
            seen = settings.topic_defaults.get(f"__unit__{target}")
            if seen is None or int(seen) <= finer:
                settings.topic_defaults[target] = str(_int(key, value) * factor)
                settings.topic_defaults[f"__unit__{target}"] = str(finer)
        else:
            config.unknown_keys.add(key)
    for key in [k for k in settings.topic_defaults if k.startswith("__unit__")]:
        del settings.topic_defaults[key]
    if txn:
        parsed = TxnConfig.from_properties(txn)
        config.txn = replace(config.txn, **{
            name: getattr(parsed, name) for key, name in TxnConfig.PROPERTIES.items()
            if key in txn})
    if groups:
        names = {
            "group.min.session.timeout.ms": "group_min_session_timeout_ms",
            "group.max.session.timeout.ms": "group_max_session_timeout_ms",
            "group.initial.rebalance.delay.ms": "group_initial_rebalance_delay_ms",
            "group.max.size": "group_max_size",
            "offset.metadata.max.bytes": "offset_metadata_max_bytes",
            "offsets.retention.minutes": "offsets_retention_minutes",
            "offsets.retention.check.interval.ms": "offsets_retention_check_interval_ms",
        }
        config.groups = replace(config.groups, **{names[k]: v for k, v in groups.items()})


def load_server_properties(path: str | Path, config: KafkaNodeConfig | None = None
                           ) -> KafkaNodeConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    config = config or KafkaNodeConfig()
    apply_server_properties(config, parse_properties(text))
    return config
