"""Kafka consumer groups: `zoolog group list|describe|seek|delete`.

describe shows the group's state, protocol and members (client id, host and the partitions
each is assigned, decoded from its ConsumerProtocolAssignment) and, per partition, the
committed offset, the log end offset and the lag, like kafka-consumer-groups.sh --describe.
seek moves a group's committed offsets (--to-earliest, --to-latest, --to-offset N clamped to
the log, --to-timestamp MS: the first offset at or after it) with OffsetCommit at generation
-1; like kafka-consumer-groups.sh --reset-offsets it refuses while the group has members
(only an Empty or not yet existing group can be moved). Same flags, formats and exit status
as `zoolog topic` (-b/--brokers, --format text|json; 0 ok, 1 Kafka error, 2 usage).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from zoolog.cli.topic import (
    Refused,
    UsageError,
    Verbs,
    add_common_arguments,
    print_json,
    print_table,
    run_verb,
)
from zoolog.client.kafka import (
    LATEST,
    GroupDescription,
    KafkaClient,
    TopicPartition,
)

INACTIVE_STATES = ("Empty", "Dead")
"""Group states in which offsets may be moved (kafka-consumer-groups.sh's rule)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", help="list consumer groups")
    describe = verbs.add_parser("describe", help="state, members, offsets and lag of a group")
    describe.add_argument("group")
    seek = verbs.add_parser("seek", help="move an inactive group's committed offsets")
    seek.add_argument("group")
    seek.add_argument("--topic", "-t", action="append", required=True,
                      help="topic whose offsets move (repeatable)")
    seek.add_argument("-p", "--partition", type=int, action="append", default=None,
                      help="only this partition (repeatable; default all)")
    to = seek.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="to the log start")
    to.add_argument("--to-latest", action="store_true", help="to the log end")
    to.add_argument("--to-offset", type=int, metavar="N",
                    help="to offset N (clamped to the log start and end)")
    to.add_argument("--to-timestamp", type=int, metavar="MS",
                    help="to the first offset whose timestamp is at or after MS")
    seek.add_argument("--dry-run", action="store_true", help="show the new offsets only")
    delete = verbs.add_parser("delete", help="delete groups (each must be Empty)")
    delete.add_argument("groups", nargs="+", metavar="GROUP")
    for sub in (listing, describe, seek, delete):
        add_common_arguments(sub)


def run(args: argparse.Namespace) -> int:
    prog = f"zoolog group {args.verb}"
    return run_verb(args, prog, _VERBS[args.verb](args))


def _list(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    async def work(client: KafkaClient) -> int:
        groups = await client.list_groups()
        if args.format == "json":
            print_json([{"group": g.group_id, "state": g.state or None,
                         "protocol_type": g.protocol_type} for g in groups])
        else:
            print_table(["GROUP", "STATE", "PROTOCOL-TYPE"],
                        [[g.group_id, g.state or None, g.protocol_type or None]
                         for g in groups])
        return 0
    return work


async def _lag_rows(client: KafkaClient, group: GroupDescription
                    ) -> list[dict[str, object]]:
    """Per partition (committed or assigned): committed offset, log end offset, lag and
    the member it is assigned to."""
    owners: dict[TopicPartition, int] = {}
    for index, member in enumerate(group.members):
        for topic, parts in (member.assignment or {}).items():
            for p in parts:
                owners[TopicPartition(topic, p)] = index
    committed = await client.fetch_committed(group.group_id)
    partitions = sorted(set(committed) | set(owners))
    topics = sorted({tp.topic for tp in partitions})
    ends_by_topic = await asyncio.gather(*(client.list_offsets(
        topic, LATEST, [tp.partition for tp in partitions if tp.topic == topic])
        for topic in topics))
    ends = {TopicPartition(topic, p): o.offset
            for topic, found in zip(topics, ends_by_topic, strict=True)
            for p, o in found.items()}
    rows = []
    for tp in partitions:
        offset = committed.get(tp, -1)
        end = ends.get(tp, -1)
        owner = group.members[owners[tp]] if tp in owners else None
        rows.append({
            "topic": tp.topic, "partition": tp.partition,
            "committed_offset": offset if offset >= 0 else None,
            "log_end_offset": end if end >= 0 else None,
            "lag": max(end - offset, 0) if offset >= 0 and end >= 0 else None,
            "member_id": owner.member_id if owner else None,
            "client_id": owner.client_id if owner else None,
            "host": owner.client_host if owner else None})
    return rows


def _describe(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    async def work(client: KafkaClient) -> int:
        group = await client.describe_group(args.group)
        rows = await _lag_rows(client, group)
        lags = [r["lag"] for r in rows if isinstance(r["lag"], int)]
        total_lag = sum(lags) if lags else None
        coordinator = group.coordinator
        if args.format == "json":
            print_json({
                "group": group.group_id, "state": group.state,
                "protocol_type": group.protocol_type, "protocol": group.protocol,
                "coordinator": None if coordinator is None else {
                    "node_id": coordinator.node_id, "host": coordinator.host,
                    "port": coordinator.port},
                "members": [{"member_id": m.member_id,
                             "group_instance_id": m.group_instance_id,
                             "client_id": m.client_id, "client_host": m.client_host,
                             "subscription": m.subscription, "assignment": m.assignment}
                            for m in group.members],
                "offsets": rows, "total_lag": total_lag})
            return 0
        protocol = "/".join(p for p in (group.protocol_type, group.protocol) if p)
        print(f"GROUP        {group.group_id}")
        if coordinator is not None:
            print(f"COORDINATOR  {coordinator.node_id} ({coordinator.host}:{coordinator.port})")
        print(f"STATE        {group.state}")
        print(f"PROTOCOL     {protocol or '-'}")
        print(f"MEMBERS      {len(group.members)}")
        print(f"TOTAL-LAG    {'-' if total_lag is None else total_lag}")
        if group.members:
            print()
            print_table(["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"],
                        [[m.member_id, m.client_id, m.client_host,
                          _assignment_text(m.assignment)] for m in group.members])
        if rows:
            print()
            print_table(["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                         "MEMBER-ID", "HOST", "CLIENT-ID"],
                        [[r["topic"], r["partition"], r["committed_offset"],
                          r["log_end_offset"], r["lag"], r["member_id"], r["host"],
                          r["client_id"]] for r in rows])
        return 0
    return work


def _assignment_text(assignment: dict[str, list[int]] | None) -> str:
    if assignment is None:
        return "?"
    if not assignment:
        return "-"
    return " ".join(f"{topic}[{','.join(str(p) for p in parts)}]"
                    for topic, parts in sorted(assignment.items()))


def _seek(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    async def work(client: KafkaClient) -> int:
        group = await client.describe_group(args.group)
        if group.state not in INACTIVE_STATES:
            raise Refused(
                f"offsets of group {args.group!r} can only be moved while it is inactive, "
                f"but it is {group.state} with {len(group.members)} member(s); stop its "
                "consumers first")
        current = await client.fetch_committed(args.group)
        plan: dict[TopicPartition, int] = {}
        for topic in dict.fromkeys(args.topic):
            info = await client.topic(topic)
            numbers = sorted(set(args.partition)) if args.partition else \
                sorted(info.partitions)
            for p in numbers:
                if p not in info.partitions:
                    raise UsageError(f"topic {topic} has no partition {p} "
                                     f"(it has {len(info.partitions)})")
            ranges = await client.offset_range(topic, numbers)
            if args.to_timestamp is not None:
                found = await client.list_offsets(topic, args.to_timestamp, numbers)
            for p in numbers:
                low, high = ranges[p]
                if args.to_earliest:
                    offset = low
                elif args.to_latest:
                    offset = high
                elif args.to_offset is not None:
                    offset = min(max(args.to_offset, low), high)
                else:
                    offset = found[p].offset
                    if offset < 0:
                        offset = high
                plan[TopicPartition(topic, p)] = offset
        if not args.dry_run:
            await client.commit_offsets(args.group, plan)
        rows = [{"topic": tp.topic, "partition": tp.partition,
                 "previous_offset": current.get(tp) if current.get(tp, -1) >= 0 else None,
                 "new_offset": offset} for tp, offset in sorted(plan.items())]
        if args.format == "json":
            print_json({"group": args.group, "dry_run": args.dry_run, "offsets": rows})
        else:
            print_table(["TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"],
                        [[r["topic"], r["partition"], r["previous_offset"], r["new_offset"]]
                         for r in rows])
            if args.dry_run:
                print("(dry run: nothing committed)")
        return 0
    return work


def _delete(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    async def work(client: KafkaClient) -> int:
        results = await client.delete_groups(args.groups)
        status = 0
        for group_id, error in results.items():
            if error is not None:
                status = 1
                detail = f": {error.message}" if error.message else ""
                print(f"zoolog group delete: {error.name} (error code {error.code}){detail}",
                      file=sys.stderr)
            elif args.format == "text":
                print(f"Deleted group {group_id}")
        if args.format == "json":
            print_json([{"group": group_id, "error": None if error is None else error.name,
                         "error_code": 0 if error is None else error.code}
                        for group_id, error in results.items()])
        return status
    return work


_VERBS: Verbs = {
    "list": _list,
    "describe": _describe,
    "seek": _seek,
    "delete": _delete,
}

__all__ = ["add_arguments", "run"]
