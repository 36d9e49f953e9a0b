"""The broker's metadata as Kafka's ZooKeeper mode laid it out: paths and JSON contents.

Kafka 2.x/3.x brokers in ZooKeeper mode keep their cluster metadata in znodes; zoolog writes
the same paths and the same JSON so that tools written for that layout (zkCli browsing,
kafka-topics --zookeeper era scripts, Burrow-style monitors) read them:

    /cluster/id                                  {"version":"1","id":"<22-char id>"}
    /controller                  (ephemeral)     {"version":2,"brokerid":0,"timestamp":"...",
                                                  "kraftControllerEpoch":-1}
    /controller_epoch                            "1"
    /brokers/ids/<id>            (ephemeral)     {"listener_security_protocol_map":{...},
                                                  "endpoints":[...],
                                                  "host":"h","port":9092,"jmx_port":-1,"timestamp":"...",
                                                  "features":{},"version":5}
    /brokers/topics/<topic>                      {"partitions":{"0":[0]},"topic_id":"<id>",
                                                  "adding_replicas":{},"removing_replicas":{},"version":3}
    /brokers/topics/<topic>/partitions/<p>/state {"controller_epoch":1,"leader":0,"version":1,
                                                  "leader_epoch":0,"isr":[0]}
    /config/topics/<topic>                       {"version":1,"config":{"retention.ms":"1000"}}
    /config/changes/config_change_<seq>          {"version":2,"entity_path":"topics/<topic>"}
    /admin/delete_topics/<topic>                 (empty; a deletion in progress)
    /latest_producer_id_block                    {"version":1,"broker":0,"block_start":"0",
                                                  "block_end":"999"}

This module only builds and parses those values (bytes in, bytes out); the runtime
(`zoolog.server.kafka_metadata`) talks to the coordination service.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

CLUSTER_ID = "/cluster/id"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
BROKER_IDS = "/brokers/ids"
BROKER_TOPICS = "/brokers/topics"
CONFIG_TOPICS = "/config/topics"
CONFIG_CHANGES = "/config/changes"
DELETE_TOPICS = "/admin/delete_topics"
PRODUCER_ID_BLOCK = "/latest_producer_id_block"

PERSISTENT_PATHS = ("/brokers", BROKER_IDS, BROKER_TOPICS, "/config", CONFIG_TOPICS,
                    CONFIG_CHANGES, "/admin", DELETE_TOPICS, "/cluster")
"""Containers a broker makes sure exist at start (as Kafka's `KafkaZkClient` does)."""

PRODUCER_ID_BLOCK_SIZE = 1000


def broker_path(broker_id: int) -> str:
    return f"{BROKER_IDS}/{broker_id}"


def topic_path(topic: str) -> str:
    return f"{BROKER_TOPICS}/{topic}"


def partitions_path(topic: str) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions"


def partition_path(topic: str, partition: int) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions/{partition}"


def partition_state_path(topic: str, partition: int) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions/{partition}/state"


def topic_config_path(topic: str) -> str:
    return f"{CONFIG_TOPICS}/{topic}"


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _load(data: bytes | None) -> Any:
    if not data:
        raise ValueError("empty znode where JSON was expected")
    return json.loads(data)


def uuid_to_id(raw: bytes) -> str:
    """Kafka's `Uuid.toString()`: URL-safe base64 without padding (22 characters)."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def id_to_uuid(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 16:
        raise ValueError(f"not a Kafka id: {text!r}")
    return raw


def cluster_id_value(cluster_id: str) -> bytes:
    return _dump({"version": "1", "id": cluster_id})


def parse_cluster_id(data: bytes | None) -> str:
    return str(_load(data)["id"])


def controller_value(broker_id: int, timestamp_ms: int) -> bytes:
    return _dump({"version": 2, "brokerid": broker_id, "timestamp": str(timestamp_ms),
                  "kraftControllerEpoch": -1})


def parse_controller(data: bytes | None) -> int:
    return int(_load(data)["brokerid"])


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    broker_id: int
    host: str
    port: int
    rack: str | None = None
    timestamp_ms: int = 0

    def value(self) -> bytes:
        registration: dict[str, Any] = {
            "features": {},
            "listener_security_protocol_map": {"PLAINTEXT": "PLAINTEXT"},
            "endpoints": [f"PLAINTEXT://{self.host}:{self.port}"],
            "jmx_port": -1,
            "port": self.port,
            "host": self.host,
            "version": 5,
            "timestamp": str(self.timestamp_ms),
        }
        if self.rack is not None:
            registration["rack"] = self.rack
        return _dump(registration)

    @classmethod
    def parse(cls, broker_id: int, data: bytes | None) -> BrokerRegistration:
        value = _load(data)
        host, port = value.get("host"), value.get("port", -1)
        for endpoint in value.get("endpoints", []):
            if isinstance(endpoint, str) and "://" in endpoint:
                address = endpoint.split("://", 1)[1]
                host, _, port_text = address.rpartition(":")
                port = int(port_text)
                break
        return cls(broker_id, str(host), int(port), value.get("rack"),
                   int(value.get("timestamp", 0)))


@dataclass(frozen=True, slots=True)
class TopicAssignment:
    """`/brokers/topics/<topic>`: the topic's id and each partition's replica list."""

    topic_id: bytes
    replicas: dict[int, list[int]] = field(default_factory=dict)

    def value(self) -> bytes:
        return _dump({
            "partitions": {str(p): r for p, r in sorted(self.replicas.items())},
            "topic_id": uuid_to_id(self.topic_id),
            "adding_replicas": {},
            "removing_replicas": {},
            "version": 3,
        })

    @classmethod
    def parse(cls, data: bytes | None) -> TopicAssignment:
        value = _load(data)
        replicas = {int(p): [int(b) for b in r] for p, r in value["partitions"].items()}
        topic_id = value.get("topic_id")
        return cls(id_to_uuid(topic_id) if topic_id else b"\0" * 16, replicas)


@dataclass(frozen=True, slots=True)
class PartitionState:
    """`/brokers/topics/<t>/partitions/<p>/state`: leader, leader epoch and ISR."""

    leader: int
    leader_epoch: int
    isr: list[int]
    controller_epoch: int = 1

    def value(self) -> bytes:
        return _dump({"controller_epoch": self.controller_epoch, "leader": self.leader,
                      "version": 1, "leader_epoch": self.leader_epoch, "isr": self.isr})

    @classmethod
    def parse(cls, data: bytes | None) -> PartitionState:
        value = _load(data)
        return cls(int(value["leader"]), int(value["leader_epoch"]),
                   [int(b) for b in value["isr"]], int(value.get("controller_epoch", 1)))


def topic_config_value(configs: dict[str, str]) -> bytes:
    return _dump({"version": 1, "config": dict(sorted(configs.items()))})


def parse_topic_config(data: bytes | None) -> dict[str, str]:
    if not data:
        return {}
    return {str(k): str(v) for k, v in _load(data).get("config", {}).items()}


def config_change_value(topic: str) -> bytes:
    return _dump({"version": 2, "entity_path": f"topics/{topic}"})


def parse_config_change(data: bytes | None) -> str | None:
    """The topic a `/config/changes/config_change_N` notification names, if any."""
    try:
        path = str(_load(data).get("entity_path", ""))
    except (ValueError, AttributeError):
        return None
    kind, _, name = path.partition("/")
    return name if kind == "topics" and name else None


def producer_id_block_value(broker_id: int, block_start: int, block_end: int) -> bytes:
    return _dump({"version": 1, "broker": broker_id, "block_start": str(block_start),
                  "block_end": str(block_end)})


def parse_producer_id_block(data: bytes | None) -> tuple[int, int]:
    """(block_start, block_end) of the last allocated block, (-1, -1) if none yet."""
    if not data:
        return -1, -1
    value = _load(data)
    return int(value["block_start"]), int(value["block_end"])
