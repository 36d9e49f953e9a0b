"""One member of a classic consumer group: JoinGroup, SyncGroup (as leader, with the range
assignment), Heartbeat, commits in its generation, LeaveGroup.

Owns `GroupConsumer` and the member's lane (its own connection to the coordinator, so that
another member's parked JoinGroup never holds up its heartbeats). Never: consume records
(the caller fetches its `assignment`), protocols other than the classic one with the
eager "range" assignor, cooperative rebalancing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zoolog.protocol.kafka._generated.heartbeat import HeartbeatRequest, HeartbeatResponse
from zoolog.protocol.kafka._generated.join_group import JoinGroupRequest, JoinGroupResponse
from zoolog.protocol.kafka._generated.leave_group import LeaveGroupRequest, LeaveGroupResponse
from zoolog.protocol.kafka._generated.sync_group import SyncGroupRequest, SyncGroupResponse
from zoolog.protocol.kafka.errors import Err

from .assignor import RANGE_ASSIGNOR, range_assign
from .consumer_protocol import (
    CONSUMER_PROTOCOL_TYPE,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from .errors import _COORDINATOR_ERRORS, KafkaConnectionError, KafkaResponseError, _check
from .limits import (
    HEARTBEAT_INTERVAL_MS_DEFAULT,
    REBALANCE_TIMEOUT_MS_DEFAULT,
    SESSION_TIMEOUT_MS_DEFAULT,
)
from .values import TopicPartition
from .versions import _HEARTBEAT, _JOIN_GROUP, _LEAVE_GROUP, _SYNC_GROUP

if TYPE_CHECKING:
    from .client import KafkaClient

_MEMBER_LANES = itertools.count(1)


class GroupConsumer:
    """One member of a classic consumer group using the eager "range" assignor.

    `await join()` runs JoinGroup (again with the member id the coordinator hands out on
    MEMBER_ID_REQUIRED) and SyncGroup (as leader it computes the range assignment for every
    member) and starts heartbeats; `assignment` then holds this member's partitions.
    Heartbeat answers REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID set
    `rebalance_needed`: the caller commits what it has and calls `join()` again. `commit()`
    commits with the current generation; `leave()` sends LeaveGroup and stops heartbeats.

    Failure model: a heartbeat that cannot reach the coordinator is retried at the next
    interval; if none gets through for `session_timeout_ms` the coordinator drops the member
    and the next heartbeat or commit says so (UNKNOWN_MEMBER_ID), which means: rejoin.
    """

    def __init__(self, client: KafkaClient, group_id: str, topics: Sequence[str], *,
                 session_timeout_ms: int = SESSION_TIMEOUT_MS_DEFAULT,
                 rebalance_timeout_ms: int = REBALANCE_TIMEOUT_MS_DEFAULT,
                 heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS_DEFAULT,
                 group_instance_id: str | None = None) -> None:
        if not topics:
            raise ValueError("a group consumer subscribes to at least one topic")
        self.client = client
        self.group_id = group_id
        self.topics = sorted(set(topics))
        self.session_timeout_ms = session_timeout_ms
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.group_instance_id = group_instance_id
        self.member_id = ""
        self.generation_id = -1
        self.leader_id = ""
        self.protocol = RANGE_ASSIGNOR
        self.assignment: dict[str, list[int]] = {}
        self.rebalance_needed = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._lane = f"member-{next(_MEMBER_LANES)}"
        """Each member talks to the coordinator over its own connection: a broker answers
        a connection's requests one at a time, and another member's JoinGroup, parked until
        the rebalance completes, must not hold up this member's heartbeats."""

    @property
    def partitions(self) -> list[TopicPartition]:
        return sorted(TopicPartition(t, p) for t, parts in self.assignment.items()
                      for p in parts)

    async def join(self) -> dict[str, list[int]]:
        """Join (or rejoin) the group; this member's assignment."""
        await self._stop_heartbeat()
        client = self.client
        for topic in self.topics:
            await client.topic(topic)  # the assignment needs them; fail early if missing
        deadline = time.monotonic() + (self.rebalance_timeout_ms * 2 + 10_000) / 1000
        while True:
            if time.monotonic() > deadline:
                raise KafkaResponseError(Err.REBALANCE_IN_PROGRESS,
                                         "the group did not settle", f"group {self.group_id!r}")
            join = await self._join_once()
            if join.error_code == Err.MEMBER_ID_REQUIRED:
                self.member_id = join.member_id
                continue
            if join.error_code in (Err.UNKNOWN_MEMBER_ID, Err.ILLEGAL_GENERATION):
                self.member_id = ""
                continue
            if join.error_code == Err.REBALANCE_IN_PROGRESS:
                continue
            _check(join.error_code, context=f"group {self.group_id!r} JoinGroup")
            self.member_id = join.member_id
            self.generation_id = join.generation_id
            self.leader_id = join.leader
            self.protocol = join.protocol_name or RANGE_ASSIGNOR
            assignments: dict[str, bytes] = {}
            if join.leader == join.member_id:
                assignments = await self._assign(join.members)
            sync = await self._sync_once(assignments)
            if sync.error_code in (Err.REBALANCE_IN_PROGRESS,):
                continue
            if sync.error_code in (Err.UNKNOWN_MEMBER_ID, Err.ILLEGAL_GENERATION):
                if sync.error_code == Err.UNKNOWN_MEMBER_ID:
                    self.member_id = ""
                continue
            _check(sync.error_code, context=f"group {self.group_id!r} SyncGroup")
            decoded = decode_assignment(sync.assignment)
            if decoded is None:
                raise KafkaResponseError(Err.INCONSISTENT_GROUP_PROTOCOL,
                                         "the assignment does not parse",
                                         f"group {self.group_id!r}")
            self.assignment = decoded
            self.rebalance_needed = False
            self._heartbeat = asyncio.ensure_future(self._heartbeat_loop())
            return self.assignment

    async def _at_coordinator(self, api_key: int, build: Callable[[int], Any],
                              response_cls: type[Any], timeout_ms: int | None = None) -> Any:
        """`build`'s request at the group's coordinator on this member's lane; the response,
        after coordinator errors were turned into the exceptions that find it again."""
        async def op(node: int) -> Any:
            response, _ = await self.client._call(node, api_key, build, response_cls,
                                                  lane=self._lane, timeout_ms=timeout_ms)
            if response.error_code in _COORDINATOR_ERRORS:
                _check(response.error_code, context=f"group {self.group_id!r}")
            return response
        return await self.client._with_coordinator(self.group_id, op)

    async def _join_once(self) -> Any:
        def build(version: int) -> JoinGroupRequest:
            return JoinGroupRequest(
                group_id=self.group_id, session_timeout_ms=self.session_timeout_ms,
                rebalance_timeout_ms=self.rebalance_timeout_ms, member_id=self.member_id,
                group_instance_id=self.group_instance_id,
                protocol_type=CONSUMER_PROTOCOL_TYPE, protocols=[
                    JoinGroupRequest.JoinGroupRequestProtocol(
                        name=RANGE_ASSIGNOR, metadata=encode_subscription(self.topics))])

        return await self._at_coordinator(_JOIN_GROUP, build, JoinGroupResponse,
                                          self.rebalance_timeout_ms
                                          + self.client.request_timeout_ms)

    async def _assign(self, members: Sequence[Any]) -> dict[str, bytes]:
        subscriptions = {m.member_id: decode_subscription(m.metadata) or [] for m in members}
        topics = sorted({t for subscribed in subscriptions.values() for t in subscribed})
        counts: dict[str, int] = {}
        for topic in topics:
            try:
                counts[topic] = len((await self.client.topic(topic)).partitions)
            except KafkaResponseError as exc:
                if exc.code != Err.UNKNOWN_TOPIC_OR_PARTITION:
                    raise
        plan = range_assign(subscriptions, counts)
        return {member: encode_assignment(parts) for member, parts in plan.items()}

    async def _sync_once(self, assignments: dict[str, bytes]) -> Any:
        def build(version: int) -> SyncGroupRequest:
            return SyncGroupRequest(
                group_id=self.group_id, generation_id=self.generation_id,
                member_id=self.member_id, group_instance_id=self.group_instance_id,
                protocol_type=CONSUMER_PROTOCOL_TYPE, protocol_name=self.protocol,
                assignments=[SyncGroupRequest.SyncGroupRequestAssignment(
                    member_id=member, assignment=data)
                    for member, data in sorted(assignments.items())])

        return await self._at_coordinator(_SYNC_GROUP, build, SyncGroupResponse,
                                          self.rebalance_timeout_ms
                                          + self.client.request_timeout_ms)

    async def heartbeat(self) -> int:
        """One Heartbeat; its error code (also recorded in `rebalance_needed`)."""
        def build(version: int) -> HeartbeatRequest:
            return HeartbeatRequest(group_id=self.group_id, generation_id=self.generation_id,
                                    member_id=self.member_id,
                                    group_instance_id=self.group_instance_id)

        code = int((await self._at_coordinator(_HEARTBEAT, build, HeartbeatResponse)).error_code)
        if code in (Err.REBALANCE_IN_PROGRESS, Err.ILLEGAL_GENERATION, Err.UNKNOWN_MEMBER_ID,
                    Err.FENCED_INSTANCE_ID):
            if code == Err.UNKNOWN_MEMBER_ID:
                self.member_id = ""
            self.rebalance_needed = True
        return code

    async def _heartbeat_loop(self) -> None:
        while not self.rebalance_needed:
            await asyncio.sleep(self.heartbeat_interval_ms / 1000)
            with contextlib.suppress(KafkaResponseError, KafkaConnectionError):
                await self.heartbeat()

    async def _stop_heartbeat(self) -> None:
        task, self._heartbeat = self._heartbeat, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def committed(self) -> dict[TopicPartition, int]:
        """Committed offsets of the assigned partitions (-1: none)."""
        return await self.client.fetch_committed(self.group_id, self.partitions,
                                                 lane=self._lane)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit as this member of the current generation. REBALANCE_IN_PROGRESS,
        ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID mean the offsets were not committed and
        the member must rejoin (`rebalance_needed` is set)."""
        try:
            await self.client.commit_offsets(
                self.group_id, offsets, generation_id=self.generation_id,
                member_id=self.member_id, group_instance_id=self.group_instance_id,
                lane=self._lane)
        except KafkaResponseError as exc:
            if exc.code in (Err.REBALANCE_IN_PROGRESS, Err.ILLEGAL_GENERATION,
                            Err.UNKNOWN_MEMBER_ID):
                self.rebalance_needed = True
            raise

    async def leave(self) -> None:
        """LeaveGroup (errors ignored: the member is gone either way) and stop heartbeats."""
        await self._stop_heartbeat()
        if not self.member_id:
            self.client._close_lane(self._lane)
            return

        def build(version: int) -> LeaveGroupRequest:
            if version >= 3:
                return LeaveGroupRequest(group_id=self.group_id, members=[
                    LeaveGroupRequest.MemberIdentity(member_id=self.member_id,
                                                     group_instance_id=self.group_instance_id)])
            return LeaveGroupRequest(group_id=self.group_id, member_id=self.member_id)

        async def op(node: int) -> None:
            await self.client._call(node, _LEAVE_GROUP, build, LeaveGroupResponse,
                                    lane=self._lane)
        with contextlib.suppress(KafkaResponseError, KafkaConnectionError):
            await self.client._with_coordinator(self.group_id, op)
        self.client._close_lane(self._lane)
        self.member_id = ""
        self.generation_id = -1
        self.assignment = {}
