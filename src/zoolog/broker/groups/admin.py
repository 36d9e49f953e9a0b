"""The group administration requests: DescribeGroups, ListGroups and DeleteGroups.

Owns `GroupAdmin` (part of `GroupCoordinator`) and what is reported as a group's
authorized operations. DeleteGroups answers once every deleted group's tombstones are
durable. Never: I/O, authorization (there is no authorizer: every operation is allowed).
"""

from __future__ import annotations

from zoolog.protocol.kafka._generated.delete_groups import DeleteGroupsRequest, DeleteGroupsResponse
from zoolog.protocol.kafka._generated.describe_groups import (
    DescribeGroupsRequest,
    DescribeGroupsResponse,
)
from zoolog.protocol.kafka._generated.list_groups import ListGroupsRequest, ListGroupsResponse
from zoolog.protocol.kafka.errors import Err

from .group import ClassicGroup, GroupState
from .outputs import Reply
from .state import CoordinatorState

_S = GroupState

_AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
"""READ, DELETE and DESCRIBE (AclOperation codes 3, 6, 8): what Kafka reports for a group
when no authorizer is configured (`AclEntry.supportedOperations(GROUP)`, KafkaApis)."""


class GroupAdmin(CoordinatorState):
    """DescribeGroups, ListGroups and DeleteGroups (part of `GroupCoordinator`)."""

    # -- DescribeGroups / ListGroups -------------------------------------------------------

    def describe_groups(self, token: object, request: DescribeGroupsRequest, version: int,
                        now_ms: int) -> None:
        self._clock(now_ms)
        with_ops = version >= 3 and request.include_authorized_operations
        described = []
        for group_id in request.groups:
            described.append(self._describe(group_id, version))
            if with_ops:
                described[-1].authorized_operations = GROUP_AUTHORIZED_OPERATIONS
        self._reply(token, DescribeGroupsResponse(groups=described))

    def _describe(self, group_id: str, version: int) -> DescribeGroupsResponse.DescribedGroup:
        group = self._groups.get(group_id)
        if group is None:
            return DescribeGroupsResponse.DescribedGroup(group_id=group_id,
                                                         group_state=_S.DEAD.value)
        stable = group.is_in(_S.STABLE)
        protocol = group.protocol_name if stable else None
        members = [DescribeGroupsResponse.DescribedGroupMember(
            member_id=m.member_id,
            group_instance_id=m.group_instance_id,
            client_id=m.client_id,
            client_host=m.client_host,
            member_metadata=m.metadata(protocol) if stable else b"",
            member_assignment=m.assignment,
        ) for m in group.members.values()]
        return DescribeGroupsResponse.DescribedGroup(
            group_id=group_id,
            group_state=group.state.value,
            protocol_type=group.protocol_type or "",
            protocol_data=(protocol or "") if stable else "",
            members=members,
        )

    def list_groups(self, token: object, request: ListGroupsRequest, version: int,
                    now_ms: int) -> None:
        self._clock(now_ms)
        states = {s.strip().lower() for s in request.states_filter} if version >= 4 else set()
        types = {t.strip().lower() for t in request.types_filter} if version >= 5 else set()
        listed = []
        for group in self._groups.values():
            if states and group.state.value.lower() not in states:
                continue
            if types and "classic" not in types:
                continue
            listed.append(ListGroupsResponse.ListedGroup(
                group_id=group.group_id, protocol_type=group.protocol_type or "",
                group_state=group.state.value, group_type="classic"))
        self._reply(token, ListGroupsResponse(error_code=Err.NONE, groups=listed))

    # -- DeleteGroups / OffsetDelete -------------------------------------------------------

    def delete_groups(self, token: object, request: DeleteGroupsRequest, version: int,
                      now_ms: int) -> None:
        self._clock(now_ms)
        results: list[DeleteGroupsResponse.DeletableGroupResult] = []
        doomed: list[ClassicGroup] = []
        for group_id in dict.fromkeys(request.groups_names):
            group = self._groups.get(group_id)
            if group is None or group.is_in(_S.DEAD):
                code = Err.GROUP_ID_NOT_FOUND
            elif not group.is_in(_S.EMPTY):
                code = Err.NON_EMPTY_GROUP
            else:
                code = Err.NONE
                doomed.append(group)
            results.append(DeleteGroupsResponse.DeletableGroupResult(group_id=group_id,
                                                                     error_code=code))
        reply = Reply(token, DeleteGroupsResponse(results=results))
        if not doomed:
            self._output.append(reply)
            return
        waiting = [len(doomed)]

        def one_done(_now_ms: int) -> None:
            waiting[0] -= 1
            if waiting[0] == 0:
                self._output.append(reply)

        for group in doomed:
            self._delete_group(group, now_ms, then=one_done)
