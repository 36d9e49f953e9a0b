"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and this broker.

Topic configs are overrides stored in the coordination service (`/config/topics/<t>`);
everything not overridden is the broker's default (`server.properties`), else Kafka's.
DescribeConfigs lists every topic key with its value, source (v1+: DYNAMIC_TOPIC_CONFIG,
STATIC_BROKER_CONFIG, DEFAULT_CONFIG), synonyms (v1+, when asked), type and documentation
(v3+). The broker resource (type 4, name = this broker's id or "") lists the broker's
settings; they are read-only here: altering them is INVALID_REQUEST (zoolog has no dynamic
broker configs).

Alterations are planned here (validated into a new override map per topic) and written by
the runtime; AlterConfigs replaces a topic's overrides, IncrementalAlterConfigs applies
SET / DELETE / APPEND / SUBTRACT (the last two on list-typed keys only).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from zoolog.broker.broker import Broker
from zoolog.broker.topic_config import (
    TOPIC_CONFIGS,
    ConfigSource,
    ConfigType,
    broker_default,
    validate_topic_configs,
)
from zoolog.protocol.kafka._generated.alter_configs import AlterConfigsRequest, AlterConfigsResponse
from zoolog.protocol.kafka._generated.describe_configs import (
    DescribeConfigsRequest,
    DescribeConfigsResponse,
)
from zoolog.protocol.kafka._generated.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from zoolog.protocol.kafka.errors import Err, KafkaError

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
RESOURCE_BROKER_LOGGER = 8

OP_SET = 0
OP_DELETE = 1
OP_APPEND = 2
OP_SUBTRACT = 3

Result = DescribeConfigsResponse.DescribeConfigsResult
Entry = DescribeConfigsResponse.DescribeConfigsResourceResult
Synonym = DescribeConfigsResponse.DescribeConfigsSynonym


def describe_configs(broker: Broker, request: DescribeConfigsRequest,
                     version: int) -> DescribeConfigsResponse:
    response = DescribeConfigsResponse()
    for resource in request.resources:
        result = Result(resource_type=resource.resource_type,
                        resource_name=resource.resource_name)
        response.results.append(result)
        # null or empty: every key (as Kafka's ConfigHelper reads it)
        keys = set(resource.configuration_keys) if resource.configuration_keys else None
        try:
            if resource.resource_type == RESOURCE_TOPIC:
                result.configs = _topic_entries(broker, resource.resource_name, keys, version,
                                                request.include_synonyms,
                                                request.include_documentation)
            elif resource.resource_type == RESOURCE_BROKER:
                _check_broker_name(broker, resource.resource_name)
                result.configs = _broker_entries(broker, keys, version)
            else:
                raise KafkaError(Err.INVALID_REQUEST,
                                 f"resource type {resource.resource_type} has no configs here")
        except KafkaError as exc:
            result.error_code = exc.code
            result.error_message = exc.message or None
            result.configs = []
    return response


def _check_broker_name(broker: Broker, name: str) -> None:
    if name not in ("", str(broker.metadata.broker_id)):
        raise KafkaError(Err.INVALID_REQUEST,
                         f"Unexpected broker id, expected {broker.metadata.broker_id} or "
                         f"empty string, but received {name}")


def _topic_entries(broker: Broker, topic: str, keys: set[str] | None, version: int,
                   synonyms: bool, documentation: bool) -> list[Entry]:
    info = broker.metadata.topics.get(topic)
    if info is None:
        raise KafkaError(Err.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{topic}' does not exist.")
    defaults = broker.settings.topic_defaults
    entries = []
    for name, definition in TOPIC_CONFIGS.items():
        if keys is not None and name not in keys:
            continue
        default_value, default_source = broker_default(definition, defaults)
        if name in info.configs:
            value, source = info.configs[name], ConfigSource.DYNAMIC_TOPIC_CONFIG
        else:
            value, source = default_value, default_source
        entry = Entry(name=name, value=value, read_only=False,
                      is_default=source == ConfigSource.DEFAULT_CONFIG,
                      config_source=source, is_sensitive=False,
                      config_type=definition.type,
                      documentation=definition.doc if documentation else None)
        if synonyms and version >= 1:
            if name in info.configs:
                entry.synonyms.append(Synonym(name=name, value=info.configs[name],
                                              source=ConfigSource.DYNAMIC_TOPIC_CONFIG))
            if definition.broker_key and definition.broker_key in defaults:
                entry.synonyms.append(Synonym(name=definition.broker_key,
                                              value=defaults[definition.broker_key],
                                              source=ConfigSource.STATIC_BROKER_CONFIG))
            if definition.broker_key:
                entry.synonyms.append(Synonym(name=definition.broker_key,
                                              value=definition.default,
                                              source=ConfigSource.DEFAULT_CONFIG))
        entries.append(entry)
    return entries


def broker_config_values(broker: Broker) -> dict[str, str]:
    """The broker's settings as server.properties keys (what DescribeConfigs shows)."""
    settings = broker.settings
    values = {
        "broker.id": str(settings.broker_id),
        "advertised.listeners": f"PLAINTEXT://{settings.host}:{settings.port}",
        "auto.create.topics.enable": str(settings.auto_create_topics_enable).lower(),
        "num.partitions": str(settings.num_partitions),
        "default.replication.factor": str(settings.default_replication_factor),
        "delete.topic.enable": str(settings.delete_topic_enable).lower(),
        "offsets.topic.num.partitions": str(settings.offsets_topic_num_partitions),
        "offsets.topic.replication.factor": "1",
        "producer.id.expiration.ms": str(settings.producer_id_expiration_ms),
        "max.incremental.fetch.session.cache.slots": str(settings.fetch_sessions_max),
    }
    if settings.rack is not None:
        values["broker.rack"] = settings.rack
    for definition in TOPIC_CONFIGS.values():
        if definition.broker_key:
            values[definition.broker_key], _ = broker_default(definition,
                                                              settings.topic_defaults)
    return dict(sorted(values.items()))


def _broker_entries(broker: Broker, keys: set[str] | None, version: int) -> list[Entry]:
    defaults = broker.settings.topic_defaults
    entries = []
    for name, value in broker_config_values(broker).items():
        if keys is not None and name not in keys:
            continue
        source = (ConfigSource.STATIC_BROKER_CONFIG if name in defaults or
                  not any(d.broker_key == name for d in TOPIC_CONFIGS.values())
                  else ConfigSource.DEFAULT_CONFIG)
        entries.append(Entry(name=name, value=value, read_only=True,
                             is_default=source == ConfigSource.DEFAULT_CONFIG,
                             config_source=source, is_sensitive=False,
                             config_type=ConfigType.STRING))
    return entries


# --- alterations -------------------------------------------------------------------------


@dataclass(slots=True)
class AlterPlan:
    changes: dict[str, dict[str, str]]
    """topic -> its complete new override map."""
    errors: dict[tuple[int, str], KafkaError]
    validate_only: bool


def plan_alter_configs(broker: Broker, request: AlterConfigsRequest) -> AlterPlan:
    plan = AlterPlan({}, {}, request.validate_only)
    for resource in request.resources:
        key = (resource.resource_type, resource.resource_name)
        try:
            _check_alterable(broker, resource.resource_type, resource.resource_name)
            names = Counter(c.name for c in resource.configs)
            if any(n > 1 for n in names.values()):
                raise KafkaError(Err.INVALID_REQUEST, "a config key is named twice")
            new = {c.name: c.value for c in resource.configs}
            plan.changes[resource.resource_name] = validate_topic_configs(new)
        except KafkaError as exc:
            plan.errors[key] = exc
    return plan


def plan_incremental_alter_configs(broker: Broker,
                                   request: IncrementalAlterConfigsRequest) -> AlterPlan:
    plan = AlterPlan({}, {}, request.validate_only)
    for resource in request.resources:
        key = (resource.resource_type, resource.resource_name)
        try:
            _check_alterable(broker, resource.resource_type, resource.resource_name)
            names = Counter(c.name for c in resource.configs)
            if any(n > 1 for n in names.values()):
                raise KafkaError(Err.INVALID_REQUEST, "a config key is named twice")
            current = dict(broker.metadata.topics[resource.resource_name].configs)
            for change in resource.configs:
                _apply_operation(broker, resource.resource_name, current, change.name,
                                 change.config_operation, change.value)
            plan.changes[resource.resource_name] = validate_topic_configs(current)
        except KafkaError as exc:
            plan.errors[key] = exc
    return plan


def _check_alterable(broker: Broker, resource_type: int, name: str) -> None:
    if resource_type == RESOURCE_BROKER:
        _check_broker_name(broker, name)
        raise KafkaError(Err.INVALID_REQUEST,
                         "broker configs are static in zoolog: set them in server.properties "
                         "or on the command line and restart")
    if resource_type != RESOURCE_TOPIC:
        raise KafkaError(Err.INVALID_REQUEST, f"resource type {resource_type} has no configs")
    if name not in broker.metadata.topics:
        raise KafkaError(Err.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist.")


def _apply_operation(broker: Broker, topic: str, current: dict[str, str], name: str,
                     operation: int, value: str | None) -> None:
    definition = TOPIC_CONFIGS.get(name)
    if definition is None:
        raise KafkaError(Err.INVALID_CONFIG, f"Unknown topic config name: {name}")
    if operation == OP_SET:
        if value is None:
            raise KafkaError(Err.INVALID_CONFIG, f"Null value not supported for {name}")
        current[name] = value
    elif operation == OP_DELETE:
        current.pop(name, None)
    elif operation in (OP_APPEND, OP_SUBTRACT):
        if definition.type != ConfigType.LIST:
            raise KafkaError(Err.INVALID_CONFIG,
                             f"Config value append/subtract is not allowed for config key "
                             f"{name} which is not a list")
        existing = current.get(name)
        if existing is None:  # start from the topic's value (the broker default)
            value_now = broker.topic_settings(topic)[name]
            existing = ",".join(value_now) if isinstance(value_now, tuple) else str(value_now)
        items = [i for i in existing.split(",") if i]
        given = [i.strip() for i in (value or "").split(",") if i.strip()]
        if operation == OP_APPEND:
            items += [i for i in given if i not in items]
        else:
            items = [i for i in items if i not in given]
        current[name] = ",".join(items)
    else:
        raise KafkaError(Err.INVALID_REQUEST, f"unknown config operation {operation}")


def alter_configs_response(request: AlterConfigsRequest | IncrementalAlterConfigsRequest,
                           plan: AlterPlan, outcomes: dict[str, KafkaError | None]
                           ) -> AlterConfigsResponse | IncrementalAlterConfigsResponse:
    response: AlterConfigsResponse | IncrementalAlterConfigsResponse
    if isinstance(request, AlterConfigsRequest):
        response = AlterConfigsResponse()
        entry_type: type = AlterConfigsResponse.AlterConfigsResourceResponse
    else:
        response = IncrementalAlterConfigsResponse()
        entry_type = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse
    for resource in request.resources:
        error = plan.errors.get((resource.resource_type, resource.resource_name))
        if error is None and resource.resource_type == RESOURCE_TOPIC:
            error = outcomes.get(resource.resource_name)
        response.responses.append(entry_type(
            error_code=error.code if error else 0,
            error_message=(error.message or None) if error else None,
            resource_type=resource.resource_type, resource_name=resource.resource_name))
    return response
