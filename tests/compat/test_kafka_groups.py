"""Consumer groups as applications use them, through confluent-kafka (librdkafka 2.16),
kafka-python 3.0 and aiokafka 0.14 over real sockets: the "order" story (two groups read
one topic independently, one member of four idle), commits and resume across consumer
restarts and broker restarts and crashes, rebalancing as members join and leave (eager and
cooperative-sticky), and static membership."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from typing import Any

import aiokafka
import confluent_kafka as ck
import kafka
import pytest
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from tests.compat.kafka_helpers import (
    KP_FAST_GROUP,
    CkMember,
    KpMember,
    Rec,
    assert_disjoint,
    assert_each_once,
    assert_per_key_order,
    assert_per_partition_order,
    by_partition,
    create_topic,
    from_ck,
    from_kp,
    group_state,
    kp_subscribe,
    order_records,
    poll_all,
    poll_until,
    produce,
    settled,
    static_members,
)

from zoolog.testing import wait_until
from zoolog.testing.kafka_servers import KafkaServerThread

ORDER = "order"
ORDER_PARTITIONS = {(ORDER, p) for p in range(3)}
CUSTOMERS = [f"customer-{i}" for i in range(12)]


@pytest.fixture
def orders(zoolog_kafka: KafkaServerThread) -> str:
    """The "order" topic with 3 partitions; returns the bootstrap address."""
    create_topic(zoolog_kafka.bootstrap, ORDER, 3)
    return zoolog_kafka.bootstrap


def order_service(bootstrap: str, count: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    """The "order service": an idempotent producer keyed by customer, so one customer's
    orders land on one partition in the order they were placed."""
    items = order_records(CUSTOMERS, start + count)[start:]
    delivered = produce(bootstrap, ORDER, items, **{"enable.idempotence": True, "acks": "all"})
    assert len(delivered) == count
    return items


def consume_until(members: list[Any], count: int, timeout_s: float = 30) -> list[Rec]:
    """Poll every member until together they have processed `count` records."""
    def enough() -> bool:
        poll_all(members)
        assert_disjoint(members)
        return sum(len(m.processed) for m in members) >= count

    wait_until(enough, timeout_s, f"{count} records processed by {[m.name for m in members]}")
    return [r for m in members for r in m.processed]


def check_group_read(records: list[Rec], items: list[tuple[bytes, bytes]], who: str) -> None:
    assert_each_once(records, [v for _, v in items], who)
    assert_per_partition_order(records, who)
    assert_per_key_order(records, who)


# --- 1. the order story ----------------------------------------------------------------


def test_order_story_notification_and_invoice_groups_confluent(orders: str) -> None:
    """Four notification consumers (one of them idle: 3 partitions) and two invoice
    consumers read the same orders; each group sees every order exactly once, each
    customer's orders in order."""
    notification = [CkMember(f"notify-{i}", orders, "notification", [ORDER]) for i in range(4)]
    invoice = [CkMember(f"invoice-{i}", orders, "invoice", [ORDER]) for i in range(2)]
    try:
        notify_view = settled(orders, "notification", notification, ORDER_PARTITIONS)
        invoice_view = settled(orders, "invoice", invoice, ORDER_PARTITIONS)
        idle = [name for name, tps in notify_view.items() if not tps]
        assert len(idle) == 1, notify_view
        assert all(len(tps) == 1 for name, tps in notify_view.items() if name not in idle)
        assert sorted(len(tps) for tps in invoice_view.values()) == [1, 2]
        events_before = {m.name: len(m.events) for m in notification + invoice}

        items = order_service(orders, 300)
        check_group_read(consume_until(notification, 300), items, "notification")
        check_group_read(consume_until(invoice, 300), items, "invoice")

        idle_member = next(m for m in notification if m.name == idle[0])
        assert idle_member.processed == [] and idle_member.assignment() == set()
        # nobody rebalanced while the orders flowed
        assert {m.name: len(m.events) for m in notification + invoice} == events_before

        # a third, independent group: an "audit" balanced consumer in kcat (librdkafka
        # 2.0.2), which exits once it has reached the end of every partition
        audit = subprocess.run(["kcat", "-b", orders, "-G", "audit", ORDER, "-o", "beginning",
                                "-e", "-q", "-f", "%t %p %o %k %s\n"],
                               capture_output=True, text=True, timeout=60)
        assert audit.returncode == 0, audit.stderr
        audited = []
        for line in audit.stdout.splitlines():
            topic, partition, offset, key, value = line.split(" ")
            audited.append(Rec(topic, int(partition), int(offset), key.encode(),
                               value.encode()))
        check_group_read(audited, items, "audit (kcat)")
        for member in notification + invoice:
            if member.processed:
                member.commit()
    finally:
        for member in notification + invoice:
            member.close()


def test_order_story_kafka_python_notifications_aiokafka_invoices(orders: str) -> None:
    """The same story with kafka-python consumers in the notification group and aiokafka
    consumers in the invoice group (on their own event loop in a thread)."""
    invoice_ready = threading.Event()
    invoice_done = threading.Event()
    invoice_out: dict[str, Any] = {}

    async def invoice_group() -> None:
        changed = asyncio.Event()  # set by every member's rebalance callbacks

        class Listener(aiokafka.ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                changed.set()

            async def on_partitions_assigned(self, assigned: Any) -> None:
                changed.set()

        consumers = [aiokafka.AIOKafkaConsumer(
            bootstrap_servers=orders, group_id="invoice", client_id=f"invoice-{i}",
            auto_offset_reset="earliest", enable_auto_commit=False, **KP_FAST_GROUP)
            for i in range(2)]
        for consumer in consumers:
            await consumer.start()
            consumer.subscribe([ORDER], listener=Listener())
        got: dict[str, list[Rec]] = {f"invoice-{i}": [] for i in range(2)}
        try:
            async def assigned() -> None:
                while True:
                    changed.clear()
                    owned = [{(tp.topic, tp.partition) for tp in c.assignment()}
                             for c in consumers]
                    flat = [tp for tps in owned for tp in tps]
                    if all(owned) and len(flat) == 3 and set(flat) == ORDER_PARTITIONS:
                        invoice_out["view"] = owned
                        return
                    await changed.wait()  # the next assignment or revocation

            await asyncio.wait_for(assigned(), 30)
            invoice_ready.set()

            async def drain(i: int) -> None:
                while sum(len(v) for v in got.values()) < 300:
                    batches = await consumers[i].getmany(timeout_ms=100)
                    for records in batches.values():
                        got[f"invoice-{i}"] += [from_kp(r) for r in records]

            await asyncio.wait_for(asyncio.gather(drain(0), drain(1)), 30)
            invoice_out["view_after"] = [{(tp.topic, tp.partition) for tp in c.assignment()}
                                         for c in consumers]
            for consumer in consumers:
                await consumer.commit()
        finally:
            invoice_out["got"] = got
            for consumer in consumers:
                await consumer.stop()

    def run_invoices() -> None:
        try:
            asyncio.run(invoice_group())
        except BaseException as exc:
            invoice_out["error"] = exc
        finally:
            invoice_ready.set()
            invoice_done.set()

    thread = threading.Thread(target=run_invoices, name="aiokafka-invoices", daemon=True)
    notification = [KpMember(f"notify-{i}", orders, "notification", [ORDER]) for i in range(4)]
    try:
        thread.start()
        notify_view = settled(orders, "notification", notification, ORDER_PARTITIONS)
        assert invoice_ready.wait(30) and "error" not in invoice_out, invoice_out.get("error")
        state, broker_view = group_state(orders, "invoice")
        assert state == "STABLE" and set(broker_view) == {"invoice-0", "invoice-1"}
        assert sorted(map(len, invoice_out["view"])) == [1, 2]
        idle = [name for name, tps in notify_view.items() if not tps]
        assert len(idle) == 1, notify_view
        events_before = {m.name: len(m.events) for m in notification}

        items = order_service(orders, 300)
        check_group_read(consume_until(notification, 300), items, "notification (kafka-python)")
        assert invoice_done.wait(40), "the aiokafka invoice group did not finish"
        assert "error" not in invoice_out, invoice_out["error"]
        invoices = [r for recs in invoice_out["got"].values() for r in recs]
        check_group_read(invoices, items, "invoice (aiokafka)")
        assert invoice_out["view_after"] == invoice_out["view"]

        idle_member = next(m for m in notification if m.name == idle[0])
        assert idle_member.processed == [] and idle_member.assignment() == set()
        assert {m.name: len(m.events) for m in notification} == events_before
    finally:
        for member in notification:
            member.close()
        thread.join(30)


# --- 2. commit, stop, resume -----------------------------------------------------------

CLIENTS = ["confluent", "kafka-python"]


def take_exactly(client: str, bootstrap: str, group: str, count: int,
                 timeout_s: float = 30) -> tuple[list[Rec], dict[int, int]]:
    """A consumer of `group` that processes exactly `count` records, commits synchronously,
    and closes. Returns what it processed and what it committed (partition -> offset)."""
    got: list[Rec] = []
    if client == "confluent":
        consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([ORDER])
        try:
            def took() -> bool:
                while len(got) < count:
                    message = consumer.poll(0.1)  # one at a time: stop at exactly `count`
                    if message is None:
                        return False
                    assert message.error() is None, message.error()
                    got.append(from_ck(message))
                return True
            wait_until(took, timeout_s, f"{count} records")
            consumer.commit(asynchronous=False)
            committed = {tp.partition: tp.offset for tp in consumer.committed(
                [ck.TopicPartition(ORDER, p) for p in range(3)], timeout=10)}
        finally:
            consumer.close()
    else:
        kp = kp_subscribe(kafka.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                              auto_offset_reset="earliest",
                                              enable_auto_commit=False), [ORDER])
        try:
            def took() -> bool:
                batches = kp.poll(timeout_ms=100, max_records=count - len(got))
                got.extend(from_kp(r) for records in batches.values() for r in records)
                return len(got) == count
            wait_until(took, timeout_s, f"{count} records")
            processed = {kafka.TopicPartition(ORDER, p): kafka.OffsetAndMetadata(
                max(r.offset for r in recs) + 1, "", -1)
                for p, recs in by_partition(got).items()}

            def commit() -> bool:
                # kafka-python answers RebalanceInProgressError when it is rejoining (it
                # says: poll, then retry); what was processed is committed explicitly, so
                # whatever that poll fetches is not counted as processed
                try:
                    kp.commit(processed)
                except kafka.errors.RebalanceInProgressError:
                    kp.poll(timeout_ms=100, max_records=1)
                    return False
                return True
            wait_until(commit, timeout_s, "the commit to go through")
            committed = {p: (kp.committed(kafka.TopicPartition(ORDER, p)) or -1001)
                         for p in range(3)}
        finally:
            kp.close()
    return got, committed


def read_rest(client: str, bootstrap: str, group: str, count: int) -> list[Rec]:
    """A new consumer of `group` that reads `count` records from where the group left off."""
    if client == "confluent":
        member: Any = CkMember("resumer", bootstrap, group, [ORDER])
    else:
        member = KpMember("resumer", bootstrap, group, [ORDER])
    try:
        return consume_until([member], count)
    finally:
        member.close()


@pytest.mark.parametrize("interruption", ["consumer-close", "broker-restart", "broker-crash"])
@pytest.mark.parametrize("client", CLIENTS)
def test_committed_offsets_resume_exactly(zoolog_kafka: KafkaServerThread, orders: str,
                                          client: str, interruption: str) -> None:
    """A billing consumer processes 130 of 300 orders, commits and closes; after the
    consumer alone, a clean broker restart, or a broker crash, a new consumer in the group
    starts exactly at the committed offsets: the other 170, none twice, none skipped."""
    items = order_service(orders, 300)
    first, committed = take_exactly(client, orders, "billing", 130)
    last_seen = {p: max(r.offset for r in recs) for p, recs in by_partition(first).items()}
    assert committed == {p: last_seen.get(p, -1) + 1 if p in last_seen else committed[p]
                         for p in range(3)}

    if interruption == "broker-restart":
        zoolog_kafka.restart()
    elif interruption == "broker-crash":
        zoolog_kafka.crash()
        zoolog_kafka.start()

    rest = read_rest(client, orders, "billing", 170)
    check_group_read(first + rest, items, f"billing ({client}, {interruption})")
    for partition, recs in by_partition(rest).items():
        assert recs[0].offset == max(committed[partition], 0), (
            f"partition {partition} resumed at {recs[0].offset}, committed "
            f"{committed[partition]}")


@pytest.mark.parametrize("how", ["restart", "crash"])
def test_live_consumer_rides_through_broker_restart(zoolog_kafka: KafkaServerThread,
                                                    orders: str, how: str) -> None:
    """A consumer that stays up while the broker restarts (or crashes and starts again)
    under it goes on where it was: orders produced before and after are each processed
    once."""
    member = CkMember("steady", orders, "steady", [ORDER], commit_on_revoke=True)
    try:
        settled(orders, "steady", [member], ORDER_PARTITIONS)
        before = order_service(orders, 150)
        consume_until([member], 150)
        member.commit()
        if how == "restart":
            zoolog_kafka.restart()
        else:
            zoolog_kafka.crash()
            zoolog_kafka.start()
        after = order_service(orders, 150, start=150)
        check_group_read(consume_until([member], 300, timeout_s=60), before + after,
                         "steady consumer across a broker restart")
    finally:
        member.close()


# --- 3. rebalancing --------------------------------------------------------------------

LEDGER = "ledger"
LEDGER_PARTITIONS = {(LEDGER, p) for p in range(6)}

STRATEGIES = {
    "confluent": {"range": {"partition.assignment.strategy": "range"},
                  "roundrobin": {"partition.assignment.strategy": "roundrobin"},
                  "cooperative-sticky": {"partition.assignment.strategy": "cooperative-sticky"}},
    "kafka-python": {
        "range": {"partition_assignment_strategy": (RangePartitionAssignor,)},
        "roundrobin": {"partition_assignment_strategy": (RoundRobinPartitionAssignor,)},
        "cooperative-sticky": {"partition_assignment_strategy": (CooperativeStickyAssignor,)}},
}


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
@pytest.mark.parametrize("client", CLIENTS)
def test_rebalance_as_members_join_and_leave(zoolog_kafka: KafkaServerThread, client: str,
                                             strategy: str) -> None:
    """A group over 6 partitions goes A -> A+B -> A+B+C -> B+C -> C while records keep
    coming and members are mid-stream. Members commit synchronously when partitions are
    revoked (and so on close). After each settled rebalance every partition has exactly
    one owner, as the members' callbacks, their assignment() and the broker all tell it;
    at no moment do two members own one partition; and across all of it every record is
    processed exactly once. Eager strategies revoke everything at each rebalance;
    cooperative-sticky revokes only what moves."""
    bootstrap = zoolog_kafka.bootstrap
    create_topic(bootstrap, LEDGER, 6)
    cooperative = strategy == "cooperative-sticky"
    member_cls: Any = CkMember if client == "confluent" else KpMember

    def member(name: str) -> Any:
        return member_cls(name, bootstrap, "ledger-readers", [LEDGER],
                          config=dict(STRATEGIES[client][strategy]), commit_on_revoke=True)

    produced: list[bytes] = []
    processed: list[Rec] = []  # of members that have left

    def produce_some(n: int) -> None:
        start = len(produced)
        values = [f"entry-{i}".encode() for i in range(start, start + n)]
        produce(bootstrap, LEDGER, [(None, v) for v in values], partitioner="random")
        produced.extend(values)

    def total(live: list[Any]) -> int:
        return len(processed) + sum(len(m.processed) for m in live)

    def midstream(live: list[Any], target: int) -> None:
        def reached() -> bool:
            poll_all(live)
            assert_disjoint(live)
            return total(live) >= target
        wait_until(reached, 30, f"{target} records processed")

    last: dict[str, dict[str, Any]] = {"view": {}, "marks": {}}  # at the last settle

    def rebalance(live: list[Any], change: Any) -> list[Any]:
        """Apply `change`, wait for the group to settle, and check what each member that
        stayed saw since the previous settle (a window that also takes in any rebalance
        a client starts on its own, as kafka-python's leader does after metadata
        updates)."""
        before, marks = last["view"], last["marks"]
        now = change(live)
        view = settled(bootstrap, "ledger-readers", now, LEDGER_PARTITIONS)
        for m in now:
            if m.name not in before:
                continue
            window = m.events[marks[m.name]:]
            revoked = {tp for kind, tps in window if kind == "revoke" for tp in tps}
            assert not any(kind == "lost" for kind, _ in window), (m.name, m.events)
            if cooperative:  # only what moved away was revoked
                assert revoked == before[m.name] - view[m.name], (m.name, m.events)
            else:            # eager: all of it, then a fresh assignment
                assert revoked == before[m.name], (m.name, m.events)
        last["view"], last["marks"] = view, {m.name: len(m.events) for m in now}
        return now

    def join(name: str) -> Any:
        def change(live: list[Any]) -> list[Any]:
            return [*live, member(name)]
        return change

    def leave(name: str) -> Any:
        def change(live: list[Any]) -> list[Any]:
            leaving = next(m for m in live if m.name == name)
            leaving.close()  # revokes (committing) and leaves the group
            processed.extend(leaving.processed)
            return [m for m in live if m.name != name]
        return change

    live: list[Any] = []
    try:
        produce_some(200)
        live = rebalance(live, join("A"))
        midstream(live, 60)
        live = rebalance(live, join("B"))
        produce_some(200)
        midstream(live, 250)
        live = rebalance(live, join("C"))
        assert all(len(m.owned) == 2 for m in live), {m.name: m.owned for m in live}
        produce_some(200)
        midstream(live, 450)
        live = rebalance(live, leave("A"))
        produce_some(100)
        midstream(live, 560)
        live = rebalance(live, leave("B"))
        assert live[0].owned == LEDGER_PARTITIONS
        midstream(live, len(produced))
        everything = processed + [r for m in live for r in m.processed]
        assert_each_once(everything, produced, f"{client} {strategy} across five rebalances")
    finally:
        for m in live:
            m.close()


# --- 4. static membership --------------------------------------------------------------


def static_member(client: str, bootstrap: str, index: int, **extra: Any) -> Any:
    if client == "confluent":
        return CkMember(f"static-{index}", bootstrap, "shipping", [ORDER],
                        config={"group.instance.id": f"shipper-{index}",
                                "session.timeout.ms": 10000, **extra})
    return KpMember(f"static-{index}", bootstrap, "shipping", [ORDER],
                    config={"group_instance_id": f"shipper-{index}",
                            "session_timeout_ms": 10000, **extra})


def leader_instance(server: KafkaServerThread, group: str) -> str | None:
    """The group.instance.id of the group's leader. No client API tells which member
    leads, so this one look is at the broker's own state (read-only, on its loop)."""
    def read() -> str | None:
        assert server.node is not None and server.node.groups is not None
        state = server.node.groups._groups[group]
        return state.members[state.leader_id].group_instance_id if state.leader_id else None
    return server.call(read)


def start_static_group(client: str, bootstrap: str, size: int) -> list[Any]:
    """Members joined one after another (each settled before the next joins)."""
    members: list[Any] = []
    for i in range(size):
        members.append(static_member(client, bootstrap, i))
        settled(bootstrap, "shipping", members, ORDER_PARTITIONS)
    return members


@pytest.mark.parametrize("which", ["follower", "leader"])
@pytest.mark.parametrize("client", CLIENTS)
def test_static_member_restart_gets_its_partitions_back_without_a_rebalance(
        zoolog_kafka: KafkaServerThread, orders: str, client: str, which: str) -> None:
    """A static member (group.instance.id) that restarts within its session timeout
    comes back to the partition it had; the other members are not revoked at all, and
    the restarted one resumes after its committed offset. The members joined one after
    another, so the first is the group's leader: restarting it is the harder case (Kafka
    answers its JoinGroup without a rebalance and its SyncGroup with the assignment the
    group already has)."""
    members = start_static_group(client, orders, 3)
    index = 0 if which == "leader" else 2
    assert leader_instance(zoolog_kafka, "shipping") == "shipper-0"
    try:
        first = order_service(orders, 90)
        consume_until(members, 90)
        for m in members:
            m.commit()
        others = [m for i, m in enumerate(members) if i != index]
        events_of_others = {m.name: list(m.events) for m in others}
        old = members[index]
        old_partitions = set(old.owned)
        old.close()  # a static member leaves no LeaveGroup behind
        state, view = group_state(orders, "shipping")
        assert state == "STABLE" and len(view) == 3, (state, view)

        new = static_member(client, orders, index)
        members[index] = new
        view_after = settled(orders, "shipping", members, ORDER_PARTITIONS)
        assert view_after[f"static-{index}"] == old_partitions
        assert leader_instance(zoolog_kafka, "shipping") == "shipper-0"  # still leads
        # (kafka-python reports an empty revocation before its first join)
        assert [e for e in new.events if e != ("revoke", [])] == [
            ("assign", sorted(old_partitions))]

        target = sum(len(m.processed) for m in members) + 90
        second = order_service(orders, 90, start=90)
        consume_until(members, target)
        for m in others:
            assert m.events == events_of_others[m.name], (m.name, m.events)
        new_records = {v for _, v in second}
        assert all(r.value in new_records for r in new.processed), "re-read committed records"
        assert_each_once([r for m in others for r in m.processed] + old.processed +
                         new.processed, [v for _, v in first + second], "shipping")
    finally:
        for m in members:
            m.close()


def test_static_member_that_does_not_return_is_expired_after_its_session(
        orders: str) -> None:
    """A static member that stops (no LeaveGroup) and does not come back keeps its
    partitions until its session times out; then the group rebalances and the survivor
    owns everything."""
    members = [CkMember(f"static-{i}", orders, "shipping", [ORDER],
                        config={"group.instance.id": f"shipper-{i}",
                                "session.timeout.ms": 6000}) for i in range(2)]
    settled(orders, "shipping", members, ORDER_PARTITIONS)
    gone, survivor = members
    stopped_at = time.monotonic()
    gone.close()
    try:
        view = settled(orders, "shipping", [survivor], ORDER_PARTITIONS, timeout_s=20)
        waited_s = time.monotonic() - stopped_at
        assert view == {"static-1": ORDER_PARTITIONS}
        # not before the session timeout (6 s; a little slack for when the clocks started)
        assert waited_s > 5.0, f"rebalanced {waited_s:.1f} s after the member stopped"
    finally:
        survivor.close()


def test_second_live_static_member_is_fenced_confluent(orders: str) -> None:
    """A second consumer started with the group.instance.id of a live member takes its
    place (as in Kafka, the newer JoinGroup replaces the member); the first gets
    FENCED_INSTANCE_ID, which librdkafka makes fatal and confluent-kafka delivers from
    consume()/poll() as a _FATAL error naming it."""
    members = start_static_group("confluent", orders, 2)
    original = members[1]
    partitions = set(original.owned)
    twin = CkMember("static-1-twin", orders, "shipping", [ORDER],
                    config={"group.instance.id": "shipper-1", "session.timeout.ms": 10000})
    try:
        def fenced() -> bool:
            poll_all([*members, twin])
            return bool(original.errors)
        wait_until(fenced, 20, "the original static member to be fenced")
        error = original.errors[0]
        # confluent-kafka does not expose rd_kafka_fatal_error(); the fatal error's text
        # carries the broker's code by its librdkafka description
        assert error.code() == ck.KafkaError._FATAL, error
        assert ck.KafkaError(ck.KafkaError.FENCED_INSTANCE_ID).str() in error.str(), error
        poll_until([members[0], twin], lambda: twin.owned == partitions, 20,
                   "the twin to hold the fenced member's partitions")
        assert static_members(orders, "shipping") == {
            "shipper-0": members[0].owned, "shipper-1": partitions}
        assert group_state(orders, "shipping")[0] == "STABLE"
    finally:
        original.consumer = None  # a fatally failed handle: nothing left to close
        for m in [*members, twin]:
            m.close()


def test_second_live_static_member_is_fenced_kafka_python(orders: str) -> None:
    """The same with kafka-python. kafka-python 3.0.12 does not raise a fenced heartbeat
    from poll() (it only logs it and stops heartbeating), so the fencing is observed where
    the fenced member next talks to the group: its offset commit is refused with
    FENCED_INSTANCE_ID (82)."""
    members = start_static_group("kafka-python", orders, 2)
    original = members[1]
    partitions = set(original.owned)
    twin = KpMember("static-1-twin", orders, "shipping", [ORDER],
                    config={"group_instance_id": "shipper-1", "session_timeout_ms": 10000})
    try:
        wait_until(lambda: twin.owned == partitions, 20,
                   "the twin to hold the fenced member's partitions")
        assert static_members(orders, "shipping") == {
            "shipper-0": members[0].owned, "shipper-1": partitions}
        with pytest.raises(kafka.errors.FencedInstanceIdError) as raised:
            original.commit()
        assert raised.value.errno == 82
        twin.commit()  # the member that replaced it commits as usual
    finally:
        for m in [*members, twin]:
            with contextlib.suppress(kafka.errors.KafkaError):
                m.close()
