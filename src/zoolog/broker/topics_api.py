"""CreateTopics, DeleteTopics and CreatePartitions, in two steps around the metadata write.

`plan_*` validates the request against the metadata image and Kafka's rules and returns
what to write; the runtime writes it to the coordination service (as Kafka's controller
does in ZooKeeper mode) and opens or removes the logs; `*_response` builds the answer from
the outcome per topic. `validate_only` requests stop after the plan.

Kafka's errors, one per topic: INVALID_TOPIC_EXCEPTION (bad or colliding name),
TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR (one broker: a factor
above 1 cannot be met), INVALID_REPLICA_ASSIGNMENT, INVALID_CONFIG, INVALID_REQUEST (a
topic named twice, assignments together with counts), UNKNOWN_TOPIC_OR_PARTITION /
UNKNOWN_TOPIC_ID, TOPIC_DELETION_DISABLED.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from zoolog.broker.broker import Broker
from zoolog.broker.metadata import TopicInfo, check_topic_name
from zoolog.broker.topic_config import TOPIC_CONFIGS, broker_default, validate_topic_configs
from zoolog.protocol.kafka._generated.create_partitions import (
    CreatePartitionsRequest,
    CreatePartitionsResponse,
)
from zoolog.protocol.kafka._generated.create_topics import (
    CreateTopicsRequest,
    CreateTopicsResponse,
)
from zoolog.protocol.kafka._generated.delete_topics import (
    DeleteTopicsRequest,
    DeleteTopicsResponse,
)
from zoolog.protocol.kafka.errors import Err, KafkaError

Outcome = KafkaError | None
"""What happened to one topic's write: None = done."""


@dataclass(slots=True)
class NewTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)
    replicas: dict[int, list[int]] = field(default_factory=dict)


@dataclass(slots=True)
class CreatePlan:
    create: list[NewTopic]
    errors: dict[str, KafkaError]
    validate_only: bool


def new_topic(broker: Broker, name: str, partitions: int = -1, replication_factor: int = -1,
              configs: dict[str, str] | None = None,
              assignments: dict[int, list[int]] | None = None) -> NewTopic:
    """A checked topic to create (KafkaError if it may not be)."""
    check_topic_name(name)
    image = broker.metadata
    if name in image.topics:
        raise KafkaError(Err.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
    other = image.colliding_topic(name)
    if other is not None:
        raise KafkaError(Err.INVALID_TOPIC_EXCEPTION,
                         f"Topic '{name}' collides with existing topic: {other}")
    brokers = sorted(image.brokers)
    settings = broker.settings
    if assignments:
        if partitions != -1 or replication_factor != -1:
            raise KafkaError(Err.INVALID_REQUEST,
                             "Both numPartitions or replicationFactor and replicasAssignments "
                             "were set. Both cannot be used at the same time.")
        if sorted(assignments) != list(range(len(assignments))):
            raise KafkaError(Err.INVALID_REPLICA_ASSIGNMENT,
                             "Partitions should be a consecutive 0-based integer sequence")
        sizes = {len(r) for r in assignments.values()}
        for replicas in assignments.values():
            if not replicas or len(set(replicas)) != len(replicas):
                raise KafkaError(Err.INVALID_REPLICA_ASSIGNMENT,
                                 f"Duplicate or empty replica assignment {replicas}")
            unknown = [b for b in replicas if b not in image.brokers]
            if unknown:
                raise KafkaError(Err.INVALID_REPLICA_ASSIGNMENT,
                                 f"Unknown broker(s) {unknown} in replica assignment")
        if len(sizes) != 1:
            raise KafkaError(Err.INVALID_REPLICA_ASSIGNMENT,
                             "All partitions should have the same number of replicas")
        partitions = len(assignments)
        replication_factor = sizes.pop()
    else:
        if partitions == -1:
            partitions = settings.num_partitions
        if replication_factor == -1:
            replication_factor = settings.default_replication_factor
        if partitions <= 0:
            raise KafkaError(Err.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
        if replication_factor <= 0:
            raise KafkaError(Err.INVALID_REPLICATION_FACTOR,
                             "Replication factor must be larger than 0.")
        if replication_factor > len(brokers):
            raise KafkaError(Err.INVALID_REPLICATION_FACTOR,
                             f"Unable to replicate the partition {replication_factor} time(s): "
                             f"The target replication factor of {replication_factor} cannot "
                             f"be reached because only {len(brokers)} broker(s) are "
                             f"registered.")
        assignments = {p: [brokers[(p + r) % len(brokers)] for r in range(replication_factor)]
                       for p in range(partitions)}
    _check_partition_limits(broker, partitions, 0)
    checked = validate_topic_configs(configs or {})
    return NewTopic(name, partitions, replication_factor, checked, assignments)


def _check_partition_limits(broker: Broker, total: int, existing: int) -> None:
    settings = broker.settings
    if total > settings.partitions_per_topic_max:
        raise KafkaError(Err.INVALID_PARTITIONS,
                         f"{total} partitions is more than this broker allows per topic "
                         f"({settings.partitions_per_topic_max})")
    if broker.partition_count() + total - existing > settings.partitions_max:
        raise KafkaError(Err.INVALID_PARTITIONS,
                         f"the broker would hold more than {settings.partitions_max} "
                         f"partitions")


def plan_create_topics(broker: Broker, request: CreateTopicsRequest) -> CreatePlan:
    plan = CreatePlan([], {}, request.validate_only)
    counts = Counter(t.name for t in request.topics)
    for topic in request.topics:
        if counts[topic.name] > 1:
            plan.errors[topic.name] = KafkaError(
                Err.INVALID_REQUEST,
                f"Create topics request from client contains multiple entries for the "
                f"following topics: {topic.name}")
            continue
        try:
            configs: dict[str, str | None] = {c.name: c.value for c in topic.configs}
            plan.create.append(new_topic(
                broker, topic.name, topic.num_partitions, topic.replication_factor,
                configs,  # type: ignore[arg-type]  # validate_topic_configs refuses None
                {a.partition_index: list(a.broker_ids) for a in topic.assignments}))
        except KafkaError as exc:
            plan.errors[topic.name] = exc
    return plan


def create_topics_response(broker: Broker, request: CreateTopicsRequest, plan: CreatePlan,
                           outcomes: dict[str, Outcome]) -> CreateTopicsResponse:
    response = CreateTopicsResponse()
    planned = {t.name: t for t in plan.create}
    for topic in request.topics:
        error = plan.errors.get(topic.name) or outcomes.get(topic.name)
        result = CreateTopicsResponse.CreatableTopicResult(name=topic.name)
        response.topics.append(result)
        if error is not None:
            result.error_code = error.code
            result.error_message = error.message or None
            result.num_partitions = -1
            result.replication_factor = -1
            result.configs = None
            continue
        new = planned[topic.name]
        info = broker.metadata.topics.get(topic.name)
        if info is not None:
            result.topic_id = info.topic_id
        result.num_partitions = new.partitions
        result.replication_factor = new.replication_factor
        result.configs = created_topic_configs(broker, new.configs)
    return response


def created_topic_configs(broker: Broker, overrides: dict[str, str]
                          ) -> list[CreateTopicsResponse.CreatableTopicConfigs]:
    out = []
    for name, definition in TOPIC_CONFIGS.items():
        if name in overrides:
            value, source = overrides[name], 1  # DYNAMIC_TOPIC_CONFIG
        else:
            value, source = broker_default(definition, broker.settings.topic_defaults)
        out.append(CreateTopicsResponse.CreatableTopicConfigs(
            name=name, value=value, read_only=False, config_source=source, is_sensitive=False))
    return out


# --- deletion ----------------------------------------------------------------------------


@dataclass(slots=True)
class DeletePlan:
    delete: list[TopicInfo]
    entries: list[tuple[str | None, bytes, KafkaError | None]]
    """(name, id, error) in request order."""


def plan_delete_topics(broker: Broker, request: DeleteTopicsRequest, version: int) -> DeletePlan:
    image = broker.metadata
    plan = DeletePlan([], [])
    asked: list[tuple[str | None, bytes]]
    if version >= 6:
        asked = [(t.name, t.topic_id) for t in request.topics]
    else:
        asked = [(name, b"\0" * 16) for name in request.topic_names]
    seen: set[str] = set()
    for name, topic_id in asked:
        info = image.topics.get(name) if name is not None else image.topics_by_id.get(topic_id)
        error: KafkaError | None = None
        if info is None:
            error = (KafkaError(Err.UNKNOWN_TOPIC_OR_PARTITION,
                                "This server does not host this topic-partition.")
                     if name is not None else KafkaError(Err.UNKNOWN_TOPIC_ID,
                                                         "This server does not host this "
                                                         "topic ID."))
        elif not broker.settings.delete_topic_enable:
            error = KafkaError(Err.TOPIC_DELETION_DISABLED,
                               "Topic deletion is disabled (delete.topic.enable=false)")
        elif info.internal:
            error = KafkaError(Err.INVALID_REQUEST,
                               f"Topic {info.name} is internal and cannot be deleted")
        elif info.name in seen:
            error = KafkaError(Err.INVALID_REQUEST, f"Topic {info.name} is named twice")
        if info is not None and error is None:
            seen.add(info.name)
            plan.delete.append(info)
        plan.entries.append((info.name if info is not None else name,
                             info.topic_id if info is not None else topic_id, error))
    return plan


def delete_topics_response(plan: DeletePlan, outcomes: dict[str, Outcome]
                           ) -> DeleteTopicsResponse:
    response = DeleteTopicsResponse()
    for name, topic_id, error in plan.entries:
        if error is None and name is not None:
            error = outcomes.get(name)
        response.responses.append(DeleteTopicsResponse.DeletableTopicResult(
            name=name, topic_id=topic_id, error_code=error.code if error else 0,
            error_message=(error.message or None) if error else None))
    return response


# --- partitions --------------------------------------------------------------------------


@dataclass(slots=True)
class PartitionsPlan:
    grow: list[tuple[TopicInfo, dict[int, list[int]]]]
    """(topic, new partition index -> replicas)."""
    errors: dict[str, KafkaError]
    validate_only: bool


def plan_create_partitions(broker: Broker, request: CreatePartitionsRequest) -> PartitionsPlan:
    plan = PartitionsPlan([], {}, request.validate_only)
    counts = Counter(t.name for t in request.topics)
    brokers = sorted(broker.metadata.brokers)
    for topic in request.topics:
        try:
            if counts[topic.name] > 1:
                raise KafkaError(Err.INVALID_REQUEST, f"Topic {topic.name} is named twice")
            info = broker.metadata.topics.get(topic.name)
            if info is None:
                raise KafkaError(Err.UNKNOWN_TOPIC_OR_PARTITION,
                                 f"The topic '{topic.name}' does not exist.")
            if info.internal:
                raise KafkaError(Err.INVALID_REQUEST,
                                 f"Cannot add partitions to internal topic {topic.name}")
            current = len(info.partitions)
            if topic.count <= current:
                raise KafkaError(Err.INVALID_PARTITIONS,
                                 f"Topic currently has {current} partitions, which is higher "
                                 f"than the requested {topic.count}.")
            _check_partition_limits(broker, topic.count, current)
            factor = len(info.partitions[0].replicas) if info.partitions else 1
            added: dict[int, list[int]] = {}
            if topic.assignments is not None:
                if len(topic.assignments) != topic.count - current:
                    raise KafkaError(Err.INVALID_REPLICA_ASSIGNMENT,
                                     f"Increasing the number of partitions by "
                                     f"{topic.count - current} but {len(topic.assignments)} "
                                     f"assignments provided.")
                for offset, assignment in enumerate(topic.assignments):
                    replicas = list(assignment.broker_ids)
                    if (len(replicas) != factor or len(set(replicas)) != len(replicas)
                            or any(b not in broker.metadata.brokers for b in replicas)):
                        raise KafkaError(Err.INVALID_REPLICA_ASSIGNMENT,
                                         f"Invalid replica assignment {replicas}")
                    added[current + offset] = replicas
            else:
                for index in range(current, topic.count):
                    added[index] = [brokers[(index + r) % len(brokers)] for r in range(factor)]
            plan.grow.append((info, added))
        except KafkaError as exc:
            plan.errors[topic.name] = exc
    return plan


def create_partitions_response(request: CreatePartitionsRequest, plan: PartitionsPlan,
                               outcomes: dict[str, Outcome]) -> CreatePartitionsResponse:
    response = CreatePartitionsResponse()
    for topic in request.topics:
        error = plan.errors.get(topic.name) or outcomes.get(topic.name)
        response.results.append(CreatePartitionsResponse.CreatePartitionsTopicResult(
            name=topic.name, error_code=error.code if error else 0,
            error_message=(error.message or None) if error else None))
    return response
