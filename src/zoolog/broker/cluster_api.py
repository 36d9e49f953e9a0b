"""Metadata, DescribeCluster and FindCoordinator: where things are.

Every broker listed is advertised at the address the runtime bound (or the configured
advertised listener), so a client that bootstraps from it reconnects to the same place;
topic ids are the stable ids kept in the coordination service. Metadata for a topic that
does not exist is UNKNOWN_TOPIC_OR_PARTITION unless the runtime auto-created it first
(`topics_to_create`); an invalid name is INVALID_TOPIC_EXCEPTION. With no ACLs, the
authorized-operations bitfields (v8+, when asked) grant everything.

FindCoordinator: this node coordinates every group. Transaction coordination (key type 1)
does not exist yet: COORDINATOR_NOT_AVAILABLE with a message saying so.
"""

from __future__ import annotations

from zoolog.broker.broker import (
    AUTHORIZED_OPERATIONS_OMITTED,
    CLUSTER_OPERATIONS,
    TOPIC_OPERATIONS,
    Broker,
)
from zoolog.broker.metadata import TopicInfo, check_topic_name
from zoolog.protocol.kafka._generated.describe_cluster import (
    DescribeClusterRequest,
    DescribeClusterResponse,
)
from zoolog.protocol.kafka._generated.find_coordinator import (
    FindCoordinatorRequest,
    FindCoordinatorResponse,
)
from zoolog.protocol.kafka._generated.metadata import MetadataRequest, MetadataResponse
from zoolog.protocol.kafka.errors import Err, KafkaError

KEY_TYPE_GROUP = 0
KEY_TYPE_TRANSACTION = 1


def requested_names(request: MetadataRequest, version: int) -> list[str] | None:
    """Topic names asked for; None means every topic."""
    if request.topics is None or (version == 0 and not request.topics):
        return None
    return [t.name for t in request.topics if t.name is not None]


def topics_to_create(broker: Broker, request: MetadataRequest, version: int) -> list[str]:
    """Unknown, validly named topics that this Metadata request auto-creates."""
    if not broker.settings.auto_create_topics_enable:
        return []
    if version >= 4 and not request.allow_auto_topic_creation:
        return []
    names = requested_names(request, version) or []
    out = []
    for name in names:
        if name in broker.metadata.topics or name in out:
            continue
        try:
            check_topic_name(name)
        except KafkaError:
            continue
        if broker.metadata.colliding_topic(name) is None:
            out.append(name)
    return out


def metadata(broker: Broker, request: MetadataRequest, version: int) -> MetadataResponse:
    image = broker.metadata
    response = MetadataResponse(
        brokers=[MetadataResponse.MetadataResponseBroker(
            node_id=b.broker_id, host=b.host, port=b.port, rack=b.rack)
            for b in image.brokers.values()],
        cluster_id=image.cluster_id,
        controller_id=image.controller_id,
        cluster_authorized_operations=(
            CLUSTER_OPERATIONS if request.include_cluster_authorized_operations
            else AUTHORIZED_OPERATIONS_OMITTED))
    names = requested_names(request, version)
    if names is None:
        for every in image.topics.values():
            response.topics.append(_topic(every, request))
    else:
        for requested in request.topics or []:
            info: TopicInfo
            if requested.name is None:
                by_id = image.topics_by_id.get(requested.topic_id)
                if by_id is None:
                    response.topics.append(MetadataResponse.MetadataResponseTopic(
                        error_code=Err.UNKNOWN_TOPIC_ID, name=None,
                        topic_id=requested.topic_id))
                    continue
                info = by_id
            else:
                found = image.topics.get(requested.name)
                if found is None:
                    response.topics.append(_missing(requested.name))
                    continue
                info = found
            response.topics.append(_topic(info, request))
    return response


def _missing(name: str) -> MetadataResponse.MetadataResponseTopic:
    code = Err.UNKNOWN_TOPIC_OR_PARTITION
    try:
        check_topic_name(name)
    except KafkaError as exc:
        code = exc.code
    return MetadataResponse.MetadataResponseTopic(error_code=code, name=name)


def _topic(info: TopicInfo, request: MetadataRequest) -> MetadataResponse.MetadataResponseTopic:
    return MetadataResponse.MetadataResponseTopic(
        name=info.name, topic_id=info.topic_id, is_internal=info.internal,
        partitions=[MetadataResponse.MetadataResponsePartition(
            partition_index=p.index, leader_id=p.leader, leader_epoch=p.leader_epoch,
            replica_nodes=list(p.replicas), isr_nodes=list(p.isr))
            for p in info.partitions],
        topic_authorized_operations=(TOPIC_OPERATIONS
                                     if request.include_topic_authorized_operations
                                     else AUTHORIZED_OPERATIONS_OMITTED))


def describe_cluster(broker: Broker, request: DescribeClusterRequest,
                     version: int) -> DescribeClusterResponse:
    image = broker.metadata
    if version >= 1 and request.endpoint_type not in (1,):
        return DescribeClusterResponse(
            error_code=Err.UNSUPPORTED_ENDPOINT_TYPE,
            error_message="only broker endpoints (type 1) exist on this cluster",
            endpoint_type=request.endpoint_type, cluster_id=image.cluster_id)
    return DescribeClusterResponse(
        endpoint_type=request.endpoint_type, cluster_id=image.cluster_id,
        controller_id=image.controller_id,
        brokers=[DescribeClusterResponse.DescribeClusterBroker(
            broker_id=b.broker_id, host=b.host, port=b.port, rack=b.rack)
            for b in image.brokers.values()],
        cluster_authorized_operations=(CLUSTER_OPERATIONS
                                       if request.include_cluster_authorized_operations
                                       else AUTHORIZED_OPERATIONS_OMITTED))


def asks_for_transactions(request: FindCoordinatorRequest, version: int) -> bool:
    return version >= 1 and request.key_type == KEY_TYPE_TRANSACTION


def find_coordinator(broker: Broker, request: FindCoordinatorRequest,
                     version: int) -> FindCoordinatorResponse:
    local = broker.metadata.local
    keys = request.coordinator_keys if version >= 4 else [request.key]
    key_type = request.key_type if version >= 1 else KEY_TYPE_GROUP
    found: list[FindCoordinatorResponse.Coordinator] = []
    for key in keys:
        if key_type == KEY_TYPE_GROUP:
            if not key:
                found.append(FindCoordinatorResponse.Coordinator(
                    key=key, node_id=-1, host="", port=-1, error_code=Err.INVALID_GROUP_ID,
                    error_message="The group id is empty"))
            else:
                found.append(FindCoordinatorResponse.Coordinator(
                    key=key, node_id=local.broker_id, host=local.host, port=local.port))
        elif key_type == KEY_TYPE_TRANSACTION:
            if not key:
                found.append(FindCoordinatorResponse.Coordinator(
                    key=key, node_id=-1, host="", port=-1, error_code=Err.INVALID_REQUEST,
                    error_message="The transactional id is empty"))
            elif broker.verify_txn is None:
                found.append(FindCoordinatorResponse.Coordinator(
                    key=key, node_id=-1, host="", port=-1,
                    error_code=Err.COORDINATOR_NOT_AVAILABLE,
                    error_message="the transaction coordinator is not running"))
            else:
                found.append(FindCoordinatorResponse.Coordinator(
                    key=key, node_id=local.broker_id, host=local.host, port=local.port))
        else:
            found.append(FindCoordinatorResponse.Coordinator(
                key=key, node_id=-1, host="", port=-1, error_code=Err.INVALID_REQUEST,
                error_message=f"unknown coordinator key type {key_type}"))
    if version >= 4:
        return FindCoordinatorResponse(coordinators=found)
    one = found[0]
    return FindCoordinatorResponse(error_code=one.error_code, error_message=one.error_message,
                                   node_id=one.node_id, host=one.host, port=one.port)
