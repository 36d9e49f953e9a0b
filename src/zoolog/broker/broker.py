"""`Broker`: the state one Kafka broker node holds, shared by its request handlers.

It owns the metadata image, the partitions it leads (log + producer state), the fetch
sessions, the producer-id block and the per-topic settings derived from topic configs.
Handlers live one module per family (`produce`, `fetch`, `offsets_api`, `cluster_api`,
`topics_api`, `configs_api`, `producers_api`) and are plain functions of a `Broker` and a
decoded request that return a response object (or a plan the runtime carries out: durable
flushes, parked fetches, metadata writes to the coordination service).

Invariant: every partition of every topic in `metadata.topics` is open in `partitions`,
and nothing else is (`open_topic` / `close_topic` keep them in step).

No I/O of its own: the logs' files go through the injected `LogFileSystem`; the
coordination service is the runtime's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zoolog.broker.fetch_sessions import FetchSessionCache
from zoolog.broker.metadata import MetadataImage, TopicInfo
from zoolog.broker.partition import Partition
from zoolog.broker.settings import BrokerSettings
from zoolog.broker.topic_config import TOPIC_CONFIGS, Value, effective
from zoolog.broker.validation import TopicRules
from zoolog.logstore.files import LogFileSystem
from zoolog.logstore.log_config import LogConfig
from zoolog.logstore.log_manager import LoadReport, LogManager
from zoolog.protocol.kafka.errors import Err, KafkaError

TxnVerifier = Callable[[str, int, int, str, int], tuple[int, str]]
"""(transactional id, producer id, epoch, topic, partition) -> (error code, message)."""

AUTHORIZED_OPERATIONS_OMITTED = -2147483648
"""The `*_authorized_operations` value when the client did not ask for them."""

# AclOperation codes: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
# CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12
TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
CLUSTER_OPERATIONS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))
GROUP_OPERATIONS = sum(1 << op for op in (3, 6, 8))
"""Without ACLs every principal may do everything: these are the bitfields Kafka reports
then (only the operations that apply to the resource type)."""


@dataclass(slots=True)
class ProducerIdBlock:
    """Producer ids handed out from a block reserved in the coordination service
    (`/latest_producer_id_block`, Kafka's ZooKeeper-mode `ProducerIdManager`)."""

    next_id: int = 0
    end: int = -1
    """Last id of the block (inclusive); next_id > end means exhausted."""

    @property
    def remaining(self) -> int:
        return max(0, self.end - self.next_id + 1)

    def take(self) -> int | None:
        if self.next_id > self.end:
            return None
        pid = self.next_id
        self.next_id += 1
        return pid


class Broker:
    """See the module docstring."""

    def __init__(self, settings: BrokerSettings, metadata: MetadataImage,
                 fs: LogFileSystem) -> None:
        self.settings = settings
        self.metadata = metadata
        self.fs = fs
        self.logs: LogManager | None = None
        self.partitions: dict[tuple[str, int], Partition] = {}
        self.fetch_sessions = FetchSessionCache(settings.fetch_sessions_max)
        self.producer_ids = ProducerIdBlock()
        self.verify_txn: TxnVerifier | None = None
        """Set by the runtime to the transaction coordinator's `verify_produce`."""
        self._settings_cache: dict[str, dict[str, Value]] = {}
        self._rules_cache: dict[str, TopicRules] = {}

    # --- topic settings -----------------------------------------------------------------

    def topic_settings(self, topic: str) -> dict[str, Value]:
        """Every topic config key resolved for `topic` (override, else broker default)."""
        cached = self._settings_cache.get(topic)
        if cached is None:
            info = self.metadata.topics.get(topic)
            overrides = info.configs if info is not None else {}
            cached = self._settings_cache[topic] = effective(overrides,
                                                             self.settings.topic_defaults)
        return cached

    def rules(self, topic: str) -> TopicRules:
        rules = self._rules_cache.get(topic)
        if rules is None:
            values = self.topic_settings(topic)
            policy = values["cleanup.policy"]
            rules = self._rules_cache[topic] = TopicRules(
                max_message_bytes=int(values["max.message.bytes"]),  # type: ignore[arg-type]
                compacted=isinstance(policy, tuple) and "compact" in policy,
                compression=str(values["compression.type"]),
                log_append_time=values["message.timestamp.type"] == "LogAppendTime",
                timestamp_before_max_ms=int(values["message.timestamp.before.max.ms"]),  # type: ignore[arg-type]
                timestamp_after_max_ms=int(values["message.timestamp.after.max.ms"]),  # type: ignore[arg-type]
                decompressed_bytes_max=self.settings.decompressed_batch_bytes_max,
            )
        return rules

    def log_config(self, topic: str) -> LogConfig:
        values = self.topic_settings(topic)
        return LogConfig.from_topic_config(
            {name: ",".join(value) if isinstance(value, tuple) else value
             for name, value in values.items() if name in TOPIC_CONFIGS})

    def topic_configs_changed(self, topic: str) -> None:
        """Forget derived settings of `topic` and hand its logs the new LogConfig."""
        self._settings_cache.pop(topic, None)
        self._rules_cache.pop(topic, None)
        info = self.metadata.topics.get(topic)
        if info is None:
            return
        config = self.log_config(topic)
        for partition in info.partitions:
            open_partition = self.partitions.get((topic, partition.index))
            if open_partition is not None:
                open_partition.log.config = config

    # --- partitions ---------------------------------------------------------------------

    def partition(self, topic: str, index: int) -> Partition:
        """The open partition, or UNKNOWN_TOPIC_OR_PARTITION."""
        partition = self.partitions.get((topic, index))
        if partition is None:
            raise KafkaError(Err.UNKNOWN_TOPIC_OR_PARTITION,
                             f"This server does not host this topic-partition: {topic}-{index}")
        return partition

    def open_logs(self, now_ms: int) -> LoadReport:
        """Open (recovering) every log in the data directory. The topics' metadata must be
        in the image first: their configs decide each log's settings."""
        self.logs, report = LogManager.open(self.fs, self.log_config, now_ms)
        return report

    def stray_logs(self) -> list[tuple[str, int]]:
        """Logs on disk that no topic in the metadata owns (left alone, reported)."""
        assert self.logs is not None
        return [tp for tp, _ in self.logs if self.metadata.partition(*tp) is None]

    def open_topic(self, info: TopicInfo, now_ms: int) -> list[Partition]:
        """Open (creating if new) the log of every partition of `info` not open yet."""
        assert self.logs is not None
        self.metadata.put_topic(info)
        self.topic_configs_changed(info.name)
        config = self.log_config(info.name)
        opened = []
        for meta in info.partitions:
            key = (info.name, meta.index)
            if key in self.partitions:
                continue
            log = self.logs.get(info.name, meta.index)
            if log is None:
                log = self.logs.create_log(info.name, meta.index, now_ms, config)
            partition = Partition.open(self.fs, info.name, meta.index, info.topic_id, log,
                                       meta.leader_epoch)
            self.partitions[key] = partition
            opened.append(partition)
        return opened

    def close_topic(self, name: str, delete_data: bool, token: str | None = None) -> None:
        """Forget a topic; with `delete_data` its logs go too (`token`: a unique suffix for
        the `-delete` directories)."""
        assert self.logs is not None
        info = self.metadata.remove_topic(name)
        self._settings_cache.pop(name, None)
        self._rules_cache.pop(name, None)
        if info is None:
            return
        self.fetch_sessions.drop_topic(name, info.topic_id)
        for meta in info.partitions:
            partition = self.partitions.pop((name, meta.index), None)
            if partition is not None:
                partition.close()
            if delete_data:
                self.logs.delete_log(name, meta.index, token)

    def partition_count(self) -> int:
        return len(self.partitions)

    def close(self) -> None:
        """Snapshot producer states, then flush and close every log (clean shutdown)."""
        for partition in self.partitions.values():
            partition.close()
        self.partitions.clear()
        if self.logs is not None:
            self.logs.close()
