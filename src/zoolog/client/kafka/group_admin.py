"""Group administration and committed offsets: ListGroups, DescribeGroups, DeleteGroups,
OffsetFetch and OffsetCommit, each sent to the group's coordinator (ListGroups to every
broker).

Owns `GroupAdmin`, the part of `KafkaClient` that reads and changes groups without being a
member of them (a member commits through it too). Every request here is retried, failing
over to a new coordinator. Never: join a group or hold membership state (see
`group_member.py`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from zoolog.protocol.kafka._generated.delete_groups import (
    DeleteGroupsRequest,
    DeleteGroupsResponse,
)
from zoolog.protocol.kafka._generated.describe_groups import (
    DescribeGroupsRequest,
    DescribeGroupsResponse,
)
from zoolog.protocol.kafka._generated.list_groups import ListGroupsRequest, ListGroupsResponse
from zoolog.protocol.kafka._generated.offset_commit import (
    OffsetCommitRequest,
    OffsetCommitResponse,
)
from zoolog.protocol.kafka._generated.offset_fetch import (
    OffsetFetchRequest,
    OffsetFetchResponse,
)
from zoolog.protocol.kafka.errors import Err

from .cluster import Cluster
from .consumer_protocol import CONSUMER_PROTOCOL_TYPE, decode_assignment, decode_subscription
from .errors import _COORDINATOR_ERRORS, KafkaResponseError, _check
from .values import GroupDescription, GroupMember, ListedGroup, TopicPartition
from .versions import _DELETE_GROUPS, _DESCRIBE_GROUPS, _LIST_GROUPS, _OFFSET_COMMIT, _OFFSET_FETCH


class GroupAdmin(Cluster):
    """Groups and their committed offsets (part of `KafkaClient`)."""

    async def list_groups(self) -> list[ListedGroup]:
        """Every group of every broker (ListGroups is answered per coordinator)."""
        await self.refresh_metadata([])
        seen: dict[str, ListedGroup] = {}
        for node in sorted(self.brokers):
            async def once(node: int = node) -> ListGroupsResponse:
                response, _ = await self._call(node, _LIST_GROUPS, lambda v: ListGroupsRequest(),
                                               ListGroupsResponse)
                _check(response.error_code, context=f"ListGroups from broker {node}")
                return response  # type: ignore[no-any-return]
            response = await self._retrying(once)
            for g in response.groups:
                seen[g.group_id] = ListedGroup(g.group_id, g.protocol_type, g.group_state)
        return sorted(seen.values())

    async def describe_group(self, group_id: str) -> GroupDescription:
        """State, protocol and members (with decoded subscriptions and assignments)."""
        async def op(node: int) -> GroupDescription:
            response, _ = await self._call(
                node, _DESCRIBE_GROUPS, lambda v: DescribeGroupsRequest(groups=[group_id]),
                DescribeGroupsResponse)
            g = response.groups[0]
            _check(g.error_code, context=f"group {group_id!r}")
            consumer = g.protocol_type == CONSUMER_PROTOCOL_TYPE
            members = [GroupMember(
                m.member_id, m.group_instance_id, m.client_id, m.client_host,
                decode_subscription(m.member_metadata) if consumer else None,
                decode_assignment(m.member_assignment) if consumer else None)
                for m in g.members]
            return GroupDescription(g.group_id, g.group_state, g.protocol_type, g.protocol_data,
                                    members, self.brokers.get(node))
        return await self._with_coordinator(group_id, op)

    async def delete_groups(self, group_ids: Sequence[str]
                            ) -> dict[str, KafkaResponseError | None]:
        """Delete groups (each must be Empty); group -> None or its error."""
        out: dict[str, KafkaResponseError | None] = {}
        for group_id in group_ids:
            async def op(node: int, group_id: str = group_id) -> KafkaResponseError | None:
                response, _ = await self._call(
                    node, _DELETE_GROUPS, lambda v: DeleteGroupsRequest(groups_names=[group_id]),
                    DeleteGroupsResponse)
                result = response.results[0]
                if result.error_code in _COORDINATOR_ERRORS:
                    _check(result.error_code, context=f"group {group_id!r}")
                if result.error_code != Err.NONE:
                    return KafkaResponseError(result.error_code, context=f"group {group_id!r}")
                return None
            try:
                out[group_id] = await self._with_coordinator(group_id, op)
            except KafkaResponseError as exc:
                out[group_id] = exc
        return out

    async def fetch_committed(self, group_id: str,
                              partitions: Iterable[TopicPartition] | None = None, *,
                              lane: str = "group") -> dict[TopicPartition, int]:
        """OffsetFetch: committed offsets of `partitions` (None: every partition the group
        has committed); -1 where nothing is committed."""
        wanted = None if partitions is None else sorted(set(partitions))

        def topics_of(cls: Any) -> Any:
            if wanted is None:
                return None
            by_topic: dict[str, list[int]] = defaultdict(list)
            for tp in wanted:
                by_topic[tp.topic].append(tp.partition)
            return [cls(name=t, partition_indexes=parts) for t, parts in by_topic.items()]

        def build(version: int) -> OffsetFetchRequest:
            if version >= 8:
                group = OffsetFetchRequest.OffsetFetchRequestGroup(group_id=group_id)
                group.topics = topics_of(OffsetFetchRequest.OffsetFetchRequestTopics)
                return OffsetFetchRequest(groups=[group])
            request = OffsetFetchRequest(group_id=group_id)
            request.topics = topics_of(OffsetFetchRequest.OffsetFetchRequestTopic)
            return request

        async def op(node: int) -> dict[TopicPartition, int]:
            response, version = await self._call(node, _OFFSET_FETCH, build,
                                                 OffsetFetchResponse, lane=lane)
            if version >= 8:
                group = response.groups[0]
                code, topics = group.error_code, group.topics
            else:
                code, topics = response.error_code, response.topics
            _check(code, context=f"group {group_id!r}")
            out: dict[TopicPartition, int] = {}
            for t in topics:
                for p in t.partitions:
                    _check(p.error_code, context=f"group {group_id!r} topic {t.name!r} "
                                                 f"partition {p.partition_index}")
                    out[TopicPartition(t.name, p.partition_index)] = p.committed_offset
            if wanted is not None:
                for tp in wanted:
                    out.setdefault(tp, -1)
            return out
        return await self._with_coordinator(group_id, op)

    async def commit_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int], *,
                             generation_id: int = -1, member_id: str = "",
                             group_instance_id: str | None = None, lane: str = "group"
                             ) -> None:
        """OffsetCommit. With the defaults (generation -1, no member) a "simple" commit,
        which the coordinator accepts only while the group has no members."""
        if not offsets:
            return
        by_topic: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for tp, offset in sorted(offsets.items()):
            by_topic[tp.topic].append((tp.partition, offset))

        def build(version: int) -> OffsetCommitRequest:
            return OffsetCommitRequest(
                group_id=group_id, generation_id_or_member_epoch=generation_id,
                member_id=member_id, group_instance_id=group_instance_id, topics=[
                    OffsetCommitRequest.OffsetCommitRequestTopic(name=topic, partitions=[
                        OffsetCommitRequest.OffsetCommitRequestPartition(
                            partition_index=p, committed_offset=o) for p, o in parts])
                    for topic, parts in by_topic.items()])

        async def op(node: int) -> None:
            response, _ = await self._call(node, _OFFSET_COMMIT, build, OffsetCommitResponse,
                                           lane=lane)
            for t in response.topics:
                for p in t.partitions:
                    _check(p.error_code, context=f"group {group_id!r} topic {t.name!r} "
                                                 f"partition {p.partition_index}")
        await self._with_coordinator(group_id, op)
