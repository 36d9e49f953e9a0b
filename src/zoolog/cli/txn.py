"""Kafka transactions, as kafka-transactions.sh shows and ends them:
`zoolog txn list|describe|producers|abort`.

list shows every transactional id each broker's coordinator holds (its coordinator, producer
id and state), filtered by --state (repeatable), --producer-id (repeatable) and
--duration-ms MS (open for longer than MS; ListTransactions v1). describe shows one id's
coordinator, producer id and epoch, state, timeout, when its open transaction started and
for how long it has been open, and the partitions in it. producers shows the active
producers of a topic's partitions (DescribeProducers at the leader): producer id and epoch,
last sequence and timestamp, coordinator epoch, and where the open transaction starts.

abort ends a transaction in one of two ways:

- `--transactional-id ID` (Kafka 4's force-terminate): InitProducerId for the id at its
  coordinator, which aborts its open transaction (ABORT markers in every partition of it)
  and bumps the epoch, so the producer holding the id is fenced; it returns once the abort
  has completed. An id its coordinator does not know is refused (TRANSACTIONAL_ID_NOT_FOUND)
  rather than created;
- `--topic T --partition P --start-offset O`, or `... --producer-id N --producer-epoch E
  [--coordinator-epoch C]` (kafka-transactions.sh abort, for a hanging transaction: one its
  coordinator no longer tracks): an ABORT marker written into that one partition through
  WriteTxnMarkers at its leader. With --start-offset the producer is the one whose open
  transaction in the partition starts at O (DescribeProducers). The coordinator is not told;
  a coordinator epoch below 0 (none seen yet) is sent as 0, as Kafka does.

Same flags, formats and exit status as `zoolog topic` (-b/--brokers, --format text|json;
0 ok, 1 Kafka error, 2 usage).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable

from zoolog.cli.topic import (
    Refused,
    UsageError,
    Verbs,
    add_common_arguments,
    dispatch,
    print_json,
    print_table,
)
from zoolog.client.kafka import KafkaClient, ProducerState, TransactionDescription

TXN_STATES = ("Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit",
              "CompleteAbort", "PrepareEpochFence", "Dead")
"""Kafka's transaction state names (what ListTransactions filters on)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", help="list transactional ids and their states")
    listing.add_argument("--state", action="append", default=[], choices=TXN_STATES,
                         help="only ids in this state (repeatable)")
    listing.add_argument("--producer-id", type=int, action="append", default=[],
                         metavar="N", help="only ids held by this producer id (repeatable)")
    listing.add_argument("--duration-ms", "--duration-filter", type=int, default=-1,
                         metavar="MS", help="only transactions open for longer than MS")
    describe = verbs.add_parser("describe", help="one transactional id's transaction")
    describe.add_argument("transactional_id", metavar="ID")
    producers = verbs.add_parser("producers", help="active producers of a topic's partitions")
    producers.add_argument("--topic", "-t", required=True)
    producers.add_argument("-p", "--partition", type=int, action="append", default=None,
                           help="only this partition (repeatable; default all)")
    abort = verbs.add_parser("abort", help="abort a transaction: by transactional id "
                                           "(fencing its producer) or a hanging one in a "
                                           "partition")
    abort.add_argument("--transactional-id", metavar="ID",
                       help="abort this id's open transaction and fence its producer")
    abort.add_argument("--topic", "-t", help="the partition's topic (hanging transaction)")
    abort.add_argument("-p", "--partition", type=int, help="the partition")
    abort.add_argument("--start-offset", type=int, metavar="O",
                       help="the first offset of the transaction in the partition")
    abort.add_argument("--producer-id", type=int, metavar="N",
                       help="the hanging transaction's producer (see `zoolog txn producers`)")
    abort.add_argument("--producer-epoch", type=int, metavar="E", help="its epoch")
    abort.add_argument("--coordinator-epoch", type=int, metavar="C",
                       help="the marker's coordinator epoch (default 0)")
    for sub in (listing, describe, producers, abort):
        add_common_arguments(sub)


def run(args: argparse.Namespace) -> int:
    return dispatch(args, "zoolog txn", _VERBS)


def _list(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    async def work(client: KafkaClient) -> int:
        listed = await client.list_transactions(args.state, args.producer_id,
                                                args.duration_ms)
        if args.format == "json":
            print_json([{"transactional_id": t.transactional_id,
                         "coordinator": t.coordinator_id, "producer_id": t.producer_id,
                         "state": t.state} for t in listed])
        else:
            print_table(["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"],
                        [[t.transactional_id, t.coordinator_id, t.producer_id, t.state]
                         for t in listed])
        return 0
    return work


def _describe(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    async def work(client: KafkaClient) -> int:
        txn = await _described(client, args.transactional_id)
        start = txn.start_timestamp_ms if txn.start_timestamp_ms >= 0 else None
        duration = None if start is None else max(int(time.time() * 1000) - start, 0)
        coordinator = txn.coordinator
        if args.format == "json":
            print_json({
                "transactional_id": txn.transactional_id,
                "coordinator": None if coordinator is None else {
                    "node_id": coordinator.node_id, "host": coordinator.host,
                    "port": coordinator.port},
                "producer_id": txn.producer_id, "producer_epoch": txn.producer_epoch,
                "state": txn.state, "transaction_timeout_ms": txn.timeout_ms,
                "start_time_ms": start, "duration_ms": duration,
                "partitions": [{"topic": tp.topic, "partition": tp.partition}
                               for tp in txn.partitions]})
            return 0
        print(f"TRANSACTIONAL-ID  {txn.transactional_id}")
        if coordinator is not None:
            print(f"COORDINATOR       {coordinator.node_id} "
                  f"({coordinator.host}:{coordinator.port})")
        print(f"PRODUCER-ID       {txn.producer_id}")
        print(f"PRODUCER-EPOCH    {txn.producer_epoch}")
        print(f"STATE             {txn.state}")
        print(f"TIMEOUT-MS        {txn.timeout_ms}")
        print(f"START-TIME-MS     {'-' if start is None else start}")
        print(f"DURATION-MS       {'-' if duration is None else duration}")
        print("PARTITIONS        " + (",".join(f"{tp.topic}-{tp.partition}"
                                               for tp in txn.partitions) or "-"))
        return 0
    return work


async def _described(client: KafkaClient, transactional_id: str) -> TransactionDescription:
    """The id's description, its error raised."""
    txn = (await client.describe_transactions([transactional_id]))[0]
    if txn.error is not None:
        raise txn.error
    return txn


def _optional(value: int) -> int | None:
    return value if value >= 0 else None


def _producer_json(partition: int, s: ProducerState) -> dict[str, object]:
    return {"partition": partition, "producer_id": s.producer_id,
            "producer_epoch": s.producer_epoch, "last_sequence": _optional(s.last_sequence),
            "last_timestamp_ms": _optional(s.last_timestamp_ms),
            "coordinator_epoch": _optional(s.coordinator_epoch),
            "current_txn_start_offset": _optional(s.current_txn_start_offset)}


def _producers(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    async def work(client: KafkaClient) -> int:
        found = await client.describe_producers(args.topic, args.partition)
        rows = [_producer_json(p, s) for p in sorted(found) for s in found[p]]
        if args.format == "json":
            print_json({"topic": args.topic, "producers": rows})
        else:
            print_table(["PARTITION", "PRODUCER-ID", "PRODUCER-EPOCH", "COORDINATOR-EPOCH",
                         "LAST-SEQUENCE", "LAST-TIMESTAMP", "CURRENT-TXN-START-OFFSET"],
                        [[r["partition"], r["producer_id"], r["producer_epoch"],
                          r["coordinator_epoch"], r["last_sequence"], r["last_timestamp_ms"],
                          r["current_txn_start_offset"]] for r in rows])
        return 0
    return work


def _abort(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    hanging = {"--topic": args.topic, "--partition": args.partition,
               "--start-offset": args.start_offset, "--producer-id": args.producer_id,
               "--producer-epoch": args.producer_epoch,
               "--coordinator-epoch": args.coordinator_epoch}
    given = [flag for flag, value in hanging.items() if value is not None]
    if args.transactional_id is not None:
        if given:
            raise UsageError(f"--transactional-id cannot be combined with {given[0]}")
        return _abort_transactional_id(args)
    if args.topic is None or args.partition is None:
        raise UsageError("give --transactional-id, or --topic and --partition of a hanging "
                         "transaction")
    if (args.start_offset is None) == (args.producer_id is None):
        raise UsageError("give exactly one of --start-offset and --producer-id")
    if args.start_offset is not None:
        extra = [f for f in ("--producer-epoch", "--coordinator-epoch") if f in given]
        if extra:
            raise UsageError(f"--start-offset finds the producer itself: drop {extra[0]}")
    elif args.producer_epoch is None:
        raise UsageError("--producer-id needs --producer-epoch")
    return _abort_hanging(args)


def _abort_transactional_id(args: argparse.Namespace
                            ) -> Callable[[KafkaClient], Awaitable[int]]:
    async def work(client: KafkaClient) -> int:
        tid = args.transactional_id
        before = await _described(client, tid)
        producer_id, epoch = await client.fence_transactional_id(tid)
        aborted = before.state == "Ongoing"
        if args.format == "json":
            print_json({"transactional_id": tid, "previous_state": before.state,
                        "aborted": aborted, "producer_id": producer_id,
                        "producer_epoch": epoch})
        elif aborted:
            print(f"Aborted the open transaction of {tid} and fenced its producer "
                  f"(producer id {producer_id}, epoch now {epoch})")
        else:
            print(f"Fenced the producer of {tid}, which had no open transaction "
                  f"({before.state}; producer id {producer_id}, epoch now {epoch})")
        return 0
    return work


def _abort_hanging(args: argparse.Namespace) -> Callable[[KafkaClient], Awaitable[int]]:
    async def work(client: KafkaClient) -> int:
        topic, partition = args.topic, args.partition
        if args.start_offset is not None:
            found = await client.find_open_transaction(topic, partition, args.start_offset)
            if found is None:
                raise Refused(f"no open transaction starts at offset {args.start_offset} "
                              f"of {topic}-{partition} (see `zoolog txn producers`)")
            producer_id, epoch = found.producer_id, found.producer_epoch
            coordinator_epoch = found.coordinator_epoch
        else:
            producer_id, epoch = args.producer_id, args.producer_epoch
            coordinator_epoch = args.coordinator_epoch if args.coordinator_epoch is not None \
                else 0
        coordinator_epoch = max(coordinator_epoch, 0)
        await client.abort_hanging_transaction(topic, partition, producer_id, epoch,
                                               coordinator_epoch)
        if args.format == "json":
            print_json({"topic": topic, "partition": partition, "producer_id": producer_id,
                        "producer_epoch": epoch, "coordinator_epoch": coordinator_epoch,
                        "start_offset": args.start_offset})
        else:
            print(f"Wrote an ABORT marker to {topic}-{partition} for producer {producer_id} "
                  f"(epoch {epoch}, coordinator epoch {coordinator_epoch})")
        return 0
    return work


_VERBS: Verbs = {
    "list": _list,
    "describe": _describe,
    "producers": _producers,
    "abort": _abort,
}

__all__ = ["add_arguments", "run"]
