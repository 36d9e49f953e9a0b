"""A fake runtime around GroupCoordinator for transcript-style tests: requests go through the
real codecs (encoded at their version and decoded again, as the broker would hand them
over), every response is encoded at its request's version, persists are made durable on
demand, and time moves only when a test says so."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from random import Random
from typing import Any

from tests.broker.clock import TickingClock

from zoolog.broker.groups import (
    ClassicGroup,
    GroupConfig,
    GroupCoordinator,
    GroupState,
    Persist,
    Reply,
)
from zoolog.protocol.kafka._generated.consumer_protocol import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)
from zoolog.protocol.kafka._generated.delete_groups import DeleteGroupsRequest
from zoolog.protocol.kafka._generated.describe_groups import DescribeGroupsRequest
from zoolog.protocol.kafka._generated.heartbeat import HeartbeatRequest
from zoolog.protocol.kafka._generated.join_group import JoinGroupRequest
from zoolog.protocol.kafka._generated.leave_group import LeaveGroupRequest
from zoolog.protocol.kafka._generated.list_groups import ListGroupsRequest
from zoolog.protocol.kafka._generated.offset_commit import OffsetCommitRequest
from zoolog.protocol.kafka._generated.offset_delete import OffsetDeleteRequest
from zoolog.protocol.kafka._generated.offset_fetch import OffsetFetchRequest
from zoolog.protocol.kafka._generated.sync_group import SyncGroupRequest
from zoolog.protocol.kafka.errors import Err

START_MS = 1_700_000_000_000
SESSION_MS = 10_000
REBALANCE_MS = 30_000

JP = JoinGroupRequest.JoinGroupRequestProtocol
SA = SyncGroupRequest.SyncGroupRequestAssignment


def subscription(*topics: str, version: int = 0, **fields: Any) -> bytes:
    """A ConsumerProtocolSubscription as a consumer puts it in JoinGroup (version prefix)."""
    body = ConsumerProtocolSubscription(topics=list(topics), **fields)
    return struct.pack(">h", version) + body.to_bytes(version)


def assignment(topic: str, *partitions: int) -> bytes:
    body = ConsumerProtocolAssignment(assigned_partitions=[
        ConsumerProtocolAssignment.TopicPartition(topic=topic, partitions=list(partitions))])
    return struct.pack(">h", 0) + body.to_bytes(0)


def wire(request: Any, version: int) -> Any:
    """The request as the broker hands it over: encoded at `version` and decoded again."""
    data = request.to_bytes(version)
    decoded, pos = type(request).decode(memoryview(data), 0, version)
    assert pos == len(data)
    return decoded


class Harness(TickingClock):
    def __init__(self, config: GroupConfig | None = None, *, seed: int = 7,
                 auto_persist: bool = True) -> None:
        self.config = config or GroupConfig()
        self.now = START_MS
        self.transitions: list[tuple[str, GroupState, GroupState]] = []
        self.coord = GroupCoordinator(self.config, Random(seed), on_transition=self._on_transition)
        self.auto_persist = auto_persist
        self.pending: list[Persist] = []
        self.log: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self.answers: dict[int, list[Any]] = {}
        self.versions: dict[int, int] = {}
        self._tokens = itertools.count(1)

    def _on_transition(self, group: ClassicGroup, before: GroupState, after: GroupState) -> None:
        self.transitions.append((group.group_id, before, after))

    # -- driving ------------------------------------------------------------------------

    def drain(self) -> None:
        while True:
            out = self.coord.take_output()
            if not out:
                return
            for item in out:
                if isinstance(item, Reply):
                    assert isinstance(item.token, int)
                    item.response.to_bytes(self.versions[item.token])  # encodable at its version
                    self.answers.setdefault(item.token, []).append(item.response)
                else:
                    assert isinstance(item, Persist)
                    assert item.partition == self.coord.partition_for(_group_of(item))
                    self.pending.append(item)
            if self.auto_persist:
                self.flush()

    def written(self, persist: Persist) -> None:
        """`persist`'s records reached the log (kept in `log`, by partition)."""
        self.log.setdefault(persist.partition, []).extend(persist.records)

    def flush(self, count: int | None = None) -> None:
        """Make the oldest `count` (all) pending persists durable, in order."""
        done = 0
        while self.pending and (count is None or done < count):
            persist = self.pending.pop(0)
            self.written(persist)
            self.coord.persisted(persist, self.now)
            done += 1
            auto, self.auto_persist = self.auto_persist, False
            self.drain()
            self.auto_persist = auto
        if self.auto_persist and self.pending:
            self.flush()

    def call(self, handler: Callable[..., None], request: Any, version: int,
             *extra: Any) -> int:
        token = next(self._tokens)
        self.versions[token] = version
        handler(token, wire(request, version), version, *extra, self.now)
        self.drain()
        return token

    def settle(self, tokens: list[int], *, step_ms: int = 100, limit_ms: int = 60_000) -> None:
        """Advance in small steps until every token is answered."""
        waited = 0
        while any(self.answer(t) is None for t in tokens):
            assert waited < limit_ms, "requests still parked"
            self.advance(step_ms)
            waited += step_ms

    def answer(self, token: int) -> Any:
        """The one response for `token` (None: still parked)."""
        got = self.answers.get(token, [])
        assert len(got) <= 1, f"token {token} answered {len(got)} times: {got}"
        return got[0] if got else None

    def group(self, group_id: str) -> ClassicGroup:
        group = self.coord.group(group_id)
        assert group is not None, group_id
        return group

    # -- requests -------------------------------------------------------------------------

    def join(self, group_id: str, member_id: str = "", *, version: int = 5,
             instance: str | None = None, protocols: list[tuple[str, bytes]] | None = None,
             session_ms: int = SESSION_MS, rebalance_ms: int = REBALANCE_MS,
             protocol_type: str = "consumer", client_id: str = "client",
             client_host: str = "/10.0.0.1") -> int:
        if protocols is None:
            protocols = [("range", subscription("t"))]
        request = JoinGroupRequest(
            group_id=group_id, session_timeout_ms=session_ms, rebalance_timeout_ms=rebalance_ms,
            member_id=member_id, group_instance_id=instance, protocol_type=protocol_type,
            protocols=[JP(name=name, metadata=meta) for name, meta in protocols])
        return self.call(self.coord.join_group, request, version, client_id, client_host)

    def sync(self, group_id: str, generation: int, member_id: str,
             assignments: dict[str, bytes] | None = None, *, version: int = 3,
             instance: str | None = None, protocol_type: str | None = None,
             protocol_name: str | None = None) -> int:
        request = SyncGroupRequest(
            group_id=group_id, generation_id=generation, member_id=member_id,
            group_instance_id=instance, protocol_type=protocol_type,
            protocol_name=protocol_name,
            assignments=[SA(member_id=m, assignment=a) for m, a in (assignments or {}).items()])
        return self.call(self.coord.sync_group, request, version)

    def heartbeat(self, group_id: str, generation: int, member_id: str, *, version: int = 3,
                  instance: str | None = None) -> int:
        request = HeartbeatRequest(group_id=group_id, generation_id=generation,
                                   member_id=member_id, group_instance_id=instance)
        return self.call(self.coord.heartbeat, request, version)

    def heartbeat_code(self, group_id: str, generation: int, member_id: str,
                       **kw: Any) -> int:
        code: int = self.answer(self.heartbeat(group_id, generation, member_id, **kw)).error_code
        return code

    def leave(self, group_id: str, member_id: str = "", *, version: int = 1,
              members: list[tuple[str, str | None]] | None = None) -> int:
        request = LeaveGroupRequest(group_id=group_id, member_id=member_id, members=[
            LeaveGroupRequest.MemberIdentity(member_id=m, group_instance_id=i)
            for m, i in (members or [])])
        return self.call(self.coord.leave_group, request, version)

    def commit(self, group_id: str, offsets: dict[tuple[str, int], int | tuple[int, str | None]],
               *, generation: int = -1, member_id: str = "", instance: str | None = None,
               version: int = 8, retention_ms: int = -1, leader_epoch: int = -1,
               commit_timestamp: int = -1) -> int:
        topics: dict[str, list[OffsetCommitRequest.OffsetCommitRequestPartition]] = {}
        for (topic, partition), value in offsets.items():
            offset, metadata = value if isinstance(value, tuple) else (value, "")
            topics.setdefault(topic, []).append(OffsetCommitRequest.OffsetCommitRequestPartition(
                partition_index=partition, committed_offset=offset,
                committed_leader_epoch=leader_epoch, commit_timestamp=commit_timestamp,
                committed_metadata=metadata))
        request = OffsetCommitRequest(
            group_id=group_id, generation_id_or_member_epoch=generation, member_id=member_id,
            group_instance_id=instance, retention_time_ms=retention_ms,
            topics=[OffsetCommitRequest.OffsetCommitRequestTopic(name=t, partitions=ps)
                    for t, ps in topics.items()])
        return self.call(self.coord.offset_commit, request, version)

    def commit_codes(self, group_id: str, offsets: Any, **kw: Any) -> dict[tuple[str, int], int]:
        response = self.answer(self.commit(group_id, offsets, **kw))
        assert response is not None, "commit still waiting"
        return {(t.name, p.partition_index): p.error_code
                for t in response.topics for p in t.partitions}

    def fetch(self, group_id: str, topics: dict[str, list[int]] | None = None, *,
              version: int = 6, require_stable: bool = False) -> Any:
        """The OffsetFetch response (v0-7 form)."""
        request = OffsetFetchRequest(group_id=group_id, require_stable=require_stable)
        request.topics = None if topics is None else [
            OffsetFetchRequest.OffsetFetchRequestTopic(name=t, partition_indexes=ps)
            for t, ps in topics.items()]
        return self.answer(self.call(self.coord.offset_fetch, request, version))

    def committed(self, group_id: str, topic: str, partition: int) -> tuple[int, str, int]:
        """(offset, metadata, leader epoch) as OffsetFetch v7 shows it."""
        response = self.fetch(group_id, {topic: [partition]}, version=7)
        p = response.topics[0].partitions[0]
        assert p.error_code == Err.NONE
        return p.committed_offset, p.metadata, p.committed_leader_epoch

    def describe(self, *group_ids: str, version: int = 5, ops: bool = False) -> list[Any]:
        request = DescribeGroupsRequest(groups=list(group_ids), include_authorized_operations=ops)
        groups: list[Any] = self.answer(self.call(self.coord.describe_groups, request,
                                                  version)).groups
        return groups

    def list_groups(self, *, version: int = 5, states: list[str] | None = None,
                    types: list[str] | None = None) -> list[Any]:
        request = ListGroupsRequest(states_filter=states or [], types_filter=types or [])
        response = self.answer(self.call(self.coord.list_groups, request, version))
        assert response.error_code == Err.NONE
        groups: list[Any] = response.groups
        return groups

    def delete_groups(self, *group_ids: str, version: int = 2) -> int:
        request = DeleteGroupsRequest(groups_names=list(group_ids))
        return self.call(self.coord.delete_groups, request, version)

    def offset_delete(self, group_id: str, topics: dict[str, list[int]]) -> int:
        request = OffsetDeleteRequest(group_id=group_id, topics=[
            OffsetDeleteRequest.OffsetDeleteRequestTopic(name=t, partitions=[
                OffsetDeleteRequest.OffsetDeleteRequestPartition(partition_index=p) for p in ps])
            for t, ps in topics.items()])
        return self.call(self.coord.offset_delete, request, 0)

    # -- flows ----------------------------------------------------------------------------

    def new_member_id(self, group_id: str, *, version: int = 5, **kw: Any) -> str:
        """JoinGroup v4+ with no member id: the MEMBER_ID_REQUIRED answer's id."""
        response = self.answer(self.join(group_id, version=version, **kw))
        assert response.error_code == Err.MEMBER_ID_REQUIRED, response
        member_id: str = response.member_id
        return member_id

    def form(self, group_id: str, count: int, *, version: int = 5, sync_version: int = 3,
             protocols: list[tuple[str, bytes]] | None = None,
             instances: list[str | None] | None = None,
             rebalance_ms: int = REBALANCE_MS,
             session_ms: int = SESSION_MS) -> tuple[list[str], int]:
        """`count` members join a new group and sync: (member ids, leader first; generation)."""
        instances = instances or [None] * count
        tokens = []
        for i in range(count):
            if instances[i] is None:
                member_id = self.new_member_id(group_id, version=version, protocols=protocols,
                                               rebalance_ms=rebalance_ms, session_ms=session_ms)
                tokens.append(self.join(group_id, member_id, version=version,
                                        protocols=protocols, rebalance_ms=rebalance_ms,
                                        session_ms=session_ms))
            else:
                tokens.append(self.join(group_id, version=version, protocols=protocols,
                                        instance=instances[i], rebalance_ms=rebalance_ms,
                                        session_ms=session_ms))
        self.settle(tokens)
        responses = [self.answer(t) for t in tokens]
        assert all(r is not None and r.error_code == Err.NONE for r in responses), responses
        generation = responses[0].generation_id
        leader = responses[0].leader
        members = [r.member_id for r in responses]
        members.sort(key=lambda m: m != leader)
        instance_of = {r.member_id: inst for r, inst in zip(responses, instances, strict=True)}
        sync_tokens = [self.sync(group_id, generation, m,
                                 {x: assignment("t", i) for i, x in enumerate(members)}
                                 if m == leader else None,
                                 version=sync_version, instance=instance_of[m])
                       for m in members]
        for t in sync_tokens:
            response = self.answer(t)
            assert response is not None and response.error_code == Err.NONE, response
        assert self.group(group_id).state is GroupState.STABLE
        return members, generation


def _group_of(persist: Persist) -> str:
    """The group a persist's records belong to (all of them name the same group)."""
    from zoolog.broker.groups import GroupRecord, OffsetRecord, decode_record

    groups = set()
    for key, value in persist.records:
        record = decode_record(key, value)
        assert isinstance(record, OffsetRecord | GroupRecord)
        groups.add(record.group)
    assert len(groups) == 1, groups
    return groups.pop()
