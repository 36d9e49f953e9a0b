"""The answer to a request that fails as a whole, in the request's own API and version.

Kafka answers a request it can parse but will not serve (a version it no longer supports,
an internal failure) with that API's response carrying the error where the API puts errors:
top-level `error_code` for most, and for APIs without one, every topic/partition/resource/
group the request named (Kafka's `AbstractRequest.getErrorResponse`). `error_response`
does the same for every API zoolog decodes, so that a failure costs the client one request,
never its connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoolog.protocol.kafka._generated import RESPONSES
from zoolog.protocol.kafka.errors import KafkaError


def _partitions_mirror(topics_attr: str, name_attr: str, parts_attr: str, index_attr: str,
                       topic_cls: str, part_cls: str, out_topics: str, out_name: str,
                       out_parts: str, out_index: str, **extra: int) -> Callable[..., Any]:
    def build(response_cls: Any, request: Any, code: int) -> Any:
        response = response_cls()
        for topic in getattr(request, topics_attr) or []:
            parts = []
            for p in getattr(topic, parts_attr) or []:
                index = p if isinstance(p, int) else getattr(p, index_attr)
                parts.append(getattr(response_cls, part_cls)(
                    **{out_index: index, "error_code": code}, **extra))
            getattr(response, out_topics).append(getattr(response_cls, topic_cls)(
                **{out_name: getattr(topic, name_attr), out_parts: parts}))
        return response
    return build


_MIRRORS: dict[int, Callable[..., Any]] = {
    0: _partitions_mirror("topic_data", "name", "partition_data", "index",
                          "TopicProduceResponse", "PartitionProduceResponse", "responses", "name",
                          "partition_responses", "index", base_offset=-1,
                          log_append_time_ms=-1, log_start_offset=-1),
    2: _partitions_mirror("topics", "name", "partitions", "partition_index",
                          "ListOffsetsTopicResponse", "ListOffsetsPartitionResponse", "topics",
                          "name", "partitions", "partition_index", timestamp=-1, offset=-1),
    8: _partitions_mirror("topics", "name", "partitions", "partition_index",
                          "OffsetCommitResponseTopic", "OffsetCommitResponsePartition", "topics",
                          "name", "partitions", "partition_index"),
    21: _partitions_mirror("topics", "name", "partitions", "partition_index",
                           "DeleteRecordsTopicResult", "DeleteRecordsPartitionResult", "topics",
                           "name", "partitions", "partition_index", low_watermark=-1),
    23: _partitions_mirror("topics", "topic", "partitions", "partition",
                           "OffsetForLeaderTopicResult", "EpochEndOffset", "topics", "topic",
                           "partitions", "partition", leader_epoch=-1, end_offset=-1),
    28: _partitions_mirror("topics", "name", "partitions", "partition_index",
                           "TxnOffsetCommitResponseTopic", "TxnOffsetCommitResponsePartition",
                           "topics", "name", "partitions", "partition_index"),
    61: _partitions_mirror("topics", "name", "partition_indexes", "partition_index",
                           "TopicResponse", "PartitionResponse", "topics", "name", "partitions",
                           "partition_index"),
}


def _fetch(response_cls: Any, request: Any, code: int, version: int) -> Any:
    response = response_cls()
    if version >= 7:
        response.error_code = code
        return response
    for topic in request.topics:
        response.responses.append(response_cls.FetchableTopicResponse(
            topic=topic.topic, topic_id=topic.topic_id,
            partitions=[response_cls.PartitionData(partition_index=p.partition, error_code=code,
                                                   high_watermark=-1)
                        for p in topic.partitions]))
    return response


def _metadata(response_cls: Any, request: Any, code: int) -> Any:
    response = response_cls()
    for topic in request.topics or []:
        response.topics.append(response_cls.MetadataResponseTopic(
            error_code=code, name=topic.name, topic_id=topic.topic_id))
    return response


def _named(list_attr: str, entry_cls: str, entry_name: str, source_attr: str,
           source_name: str | None) -> Callable[..., Any]:
    def build(response_cls: Any, request: Any, code: int, message: str) -> Any:
        response = response_cls()
        for item in getattr(request, source_attr) or []:
            value = item if source_name is None else getattr(item, source_name)
            entry = getattr(response_cls, entry_cls)(**{entry_name: value, "error_code": code})
            if hasattr(entry, "error_message"):
                entry.error_message = message or None
            getattr(response, list_attr).append(entry)
        return response
    return build


_NAMED: dict[int, Callable[..., Any]] = {
    15: _named("groups", "DescribedGroup", "group_id", "groups", None),
    19: _named("topics", "CreatableTopicResult", "name", "topics", "name"),
    37: _named("results", "CreatePartitionsTopicResult", "name", "topics", "name"),
    42: _named("results", "DeletableGroupResult", "group_id", "groups_names", None),
    65: _named("transaction_states", "TransactionState", "transactional_id",
               "transactional_ids", None),
}


def _delete_topics(response_cls: Any, request: Any, code: int, version: int) -> Any:
    response = response_cls()
    names = ([t.name for t in request.topics] if version >= 6 else list(request.topic_names))
    for name in names:
        response.responses.append(response_cls.DeletableTopicResult(name=name, error_code=code))
    return response


def _resources(response_cls: Any, request: Any, code: int, message: str, list_attr: str,
               entry_cls: str) -> Any:
    response = response_cls()
    for resource in request.resources:
        getattr(response, list_attr).append(getattr(response_cls, entry_cls)(
            error_code=code, error_message=message or None,
            resource_type=resource.resource_type, resource_name=resource.resource_name))
    return response


def _offset_fetch(response_cls: Any, request: Any, code: int, version: int) -> Any:
    response = response_cls()
    if version >= 8:
        for group in request.groups:
            response.groups.append(response_cls.OffsetFetchResponseGroup(
                group_id=group.group_id, error_code=code))
        return response
    if version >= 2:
        response.error_code = code
        return response
    for topic in request.topics or []:
        response.topics.append(response_cls.OffsetFetchResponseTopic(
            name=topic.name,
            partitions=[response_cls.OffsetFetchResponsePartition(
                partition_index=i, committed_offset=-1, error_code=code)
                for i in topic.partition_indexes]))
    return response


def _find_coordinator(response_cls: Any, request: Any, code: int, message: str,
                      version: int) -> Any:
    if version >= 4:
        return response_cls(coordinators=[response_cls.Coordinator(
            key=key, node_id=-1, host="", port=-1, error_code=code,
            error_message=message or None) for key in request.coordinator_keys])
    return response_cls(error_code=code, error_message=message or None, node_id=-1, host="",
                        port=-1)


def _add_partitions_to_txn(response_cls: Any, request: Any, code: int, version: int) -> Any:
    if version >= 4:
        return response_cls(error_code=code)
    return response_cls(results_by_topic_v3_and_below=[
        response_cls.AddPartitionsToTxnTopicResult(name=topic.name, results_by_partition=[
            response_cls.AddPartitionsToTxnPartitionResult(partition_index=index,
                                                          partition_error_code=code)
            for index in topic.partitions])
        for topic in request.v3_and_below_topics])


def _write_txn_markers(response_cls: Any, request: Any, code: int) -> Any:
    return response_cls(markers=[
        response_cls.WritableTxnMarkerResult(producer_id=marker.producer_id, topics=[
            response_cls.WritableTxnMarkerTopicResult(name=topic.name, partitions=[
                response_cls.WritableTxnMarkerPartitionResult(partition_index=index,
                                                              error_code=code)
                for index in topic.partition_indexes])
            for topic in marker.topics])
        for marker in request.markers])


def error_response(api_key: int, request: Any, version: int, error: KafkaError) -> Any:
    """The `api_key` response to `request` (decoded in `version`) failing with `error`."""
    response_cls = RESPONSES[api_key]
    code, message = error.code, error.message
    if api_key in _MIRRORS:
        return _MIRRORS[api_key](response_cls, request, code)
    if api_key in _NAMED:
        return _NAMED[api_key](response_cls, request, code, message)
    if api_key == 1:
        return _fetch(response_cls, request, code, version)
    if api_key == 3:
        return _metadata(response_cls, request, code)
    if api_key == 9:
        return _offset_fetch(response_cls, request, code, version)
    if api_key == 10:
        return _find_coordinator(response_cls, request, code, message, version)
    if api_key == 20:
        return _delete_topics(response_cls, request, code, version)
    if api_key == 24:
        return _add_partitions_to_txn(response_cls, request, code, version)
    if api_key == 27:
        return _write_txn_markers(response_cls, request, code)
    if api_key == 32:
        return _resources(response_cls, request, code, message, "results",
                          "DescribeConfigsResult")
    if api_key in (33, 44):
        return _resources(response_cls, request, code, message, "responses",
                          "AlterConfigsResourceResponse")
    response = response_cls()
    if hasattr(response, "error_code"):
        response.error_code = code
        if hasattr(response, "error_message"):
            response.error_message = message or None
        return response
    raise KafkaError(code, f"no error response shape for API {api_key}")
