"""Topic and config administration: CreateTopics, DeleteTopics (both to the controller),
DescribeConfigs and IncrementalAlterConfigs.

Owns `TopicAdmin`, the part of `KafkaClient` that changes topics and their configs.
Never: retry CreateTopics, DeleteTopics or IncrementalAlterConfigs (they are not safe to
send twice); DescribeConfigs is retried.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from zoolog.protocol.kafka._generated.create_topics import (
    CreateTopicsRequest,
    CreateTopicsResponse,
)
from zoolog.protocol.kafka._generated.delete_topics import (
    DeleteTopicsRequest,
    DeleteTopicsResponse,
)
from zoolog.protocol.kafka._generated.describe_configs import (
    DescribeConfigsRequest,
    DescribeConfigsResponse,
)
from zoolog.protocol.kafka._generated.incremental_alter_configs import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)
from zoolog.protocol.kafka.errors import Err

from .cluster import Cluster
from .errors import KafkaResponseError, _check
from .values import ConfigEntry, CreatedTopic
from .versions import _CREATE_TOPICS, _DELETE_TOPICS, _DESCRIBE_CONFIGS, _INCREMENTAL_ALTER_CONFIGS

_RESOURCE_TOPIC = 2
_CONFIG_SET = 0
_CONFIG_DELETE = 1
CONFIG_SOURCES = {0: "UNKNOWN", 1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG",
                  3: "DYNAMIC_DEFAULT_BROKER_CONFIG", 4: "STATIC_BROKER_CONFIG",
                  5: "DEFAULT_CONFIG", 6: "DYNAMIC_BROKER_LOGGER_CONFIG",
                  7: "CLIENT_METRICS_CONFIG", 8: "GROUP_CONFIG"}


class TopicAdmin(Cluster):
    """Topics and their configs (part of `KafkaClient`)."""

    async def _controller(self) -> int:
        if self.controller_id < 0 or self.controller_id not in self.brokers:
            await self.refresh_metadata([])
        return self.controller_id if self.controller_id in self.brokers else \
            await self._any_node()

    async def create_topic(self, name: str, partitions: int = -1, replication_factor: int = -1,
                           configs: Mapping[str, str] | None = None, *,
                           validate_only: bool = False, timeout_ms: int = 30_000
                           ) -> CreatedTopic:
        """Create one topic (-1: the broker's num.partitions / default.replication.factor).
        Raises KafkaResponseError (TOPIC_ALREADY_EXISTS, INVALID_CONFIG, ...)."""
        def build(version: int) -> CreateTopicsRequest:
            return CreateTopicsRequest(topics=[CreateTopicsRequest.CreatableTopic(
                name=name, num_partitions=partitions, replication_factor=replication_factor,
                configs=[CreateTopicsRequest.CreatableTopicConfig(name=k, value=v)
                         for k, v in (configs or {}).items()])],
                timeout_ms=timeout_ms, validate_only=validate_only)
        response, version = await self._call(await self._controller(), _CREATE_TOPICS, build,
                                             CreateTopicsResponse,
                                             timeout_ms=timeout_ms + self.request_timeout_ms)
        result = response.topics[0]
        _check(result.error_code, result.error_message, f"topic {name!r}")
        self._forget_topics([name])
        if version >= 5 and result.num_partitions > 0:
            return CreatedTopic(name, result.topic_id, result.num_partitions,
                                result.replication_factor)
        info = await self.topic(name, refresh=True)
        return CreatedTopic(name, info.topic_id, len(info.partitions), info.replication_factor)

    async def delete_topics(self, names: Sequence[str], *, timeout_ms: int = 30_000
                            ) -> dict[str, KafkaResponseError | None]:
        """Delete topics; each name -> None or the error that topic failed with."""
        def build(version: int) -> DeleteTopicsRequest:
            if version >= 6:
                return DeleteTopicsRequest(topics=[DeleteTopicsRequest.DeleteTopicState(
                    name=n) for n in names], timeout_ms=timeout_ms)
            return DeleteTopicsRequest(topic_names=list(names), timeout_ms=timeout_ms)
        response, _ = await self._call(await self._controller(), _DELETE_TOPICS, build,
                                       DeleteTopicsResponse,
                                       timeout_ms=timeout_ms + self.request_timeout_ms)
        out: dict[str, KafkaResponseError | None] = {n: None for n in names}
        for result in response.responses:
            if result.name is not None and result.error_code != Err.NONE:
                out[result.name] = KafkaResponseError(result.error_code, result.error_message
                                                      or "", f"topic {result.name!r}")
        self._forget_topics(names)
        return out

    async def describe_configs(self, topic: str, keys: Sequence[str] | None = None
                               ) -> list[ConfigEntry]:
        """A topic's configs (every key, or `keys`), each with where its value comes from."""
        async def once() -> list[ConfigEntry]:
            def build(version: int) -> DescribeConfigsRequest:
                resource = DescribeConfigsRequest.DescribeConfigsResource(
                    resource_type=_RESOURCE_TOPIC, resource_name=topic,
                    configuration_keys=list(keys) if keys is not None else None)
                if keys is None:
                    resource.configuration_keys = None
                return DescribeConfigsRequest(resources=[resource])
            response, _ = await self._call(await self._any_node(), _DESCRIBE_CONFIGS, build,
                                           DescribeConfigsResponse)
            result = response.results[0]
            _check(result.error_code, result.error_message, f"topic {topic!r}")
            return [ConfigEntry(c.name, c.value, CONFIG_SOURCES.get(c.config_source, "UNKNOWN"),
                                c.config_source == 5, c.read_only, c.is_sensitive)
                    for c in result.configs]
        return await self._retrying(once)

    async def alter_topic_config(self, topic: str, set_values: Mapping[str, str] | None = None,
                                 delete: Sequence[str] = (), *, validate_only: bool = False
                                 ) -> None:
        """IncrementalAlterConfigs: SET each of `set_values`, DELETE each of `delete` (back
        to the default)."""
        def build(version: int) -> IncrementalAlterConfigsRequest:
            configs = [IncrementalAlterConfigsRequest.AlterableConfig(
                name=k, config_operation=_CONFIG_SET, value=v)
                for k, v in (set_values or {}).items()]
            for name in delete:
                entry = IncrementalAlterConfigsRequest.AlterableConfig(
                    name=name, config_operation=_CONFIG_DELETE)
                entry.value = None
                configs.append(entry)
            return IncrementalAlterConfigsRequest(resources=[
                IncrementalAlterConfigsRequest.AlterConfigsResource(
                    resource_type=_RESOURCE_TOPIC, resource_name=topic, configs=configs)],
                validate_only=validate_only)
        response, _ = await self._call(await self._any_node(), _INCREMENTAL_ALTER_CONFIGS,
                                       build, IncrementalAlterConfigsResponse)
        result = response.responses[0]
        _check(result.error_code, result.error_message, f"topic {topic!r}")
