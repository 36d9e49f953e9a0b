"""Shared pieces for the Kafka user-story tests: topics, reading a whole log back, group
members that record what their rebalance callbacks saw, and a TCP relay that can cut a
connection between a Produce request and its response.

Everything here talks to the broker only through real clients over real sockets (and the
relay only moves bytes); nothing reaches into the broker's internals.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import confluent_kafka as ck
import kafka
import kafka.consumer.subscription_state
import kafka.errors
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.record.util import calc_crc32c  # C-accelerated when the crc32c package is there
from kafka.structs import OffsetAndMetadata

from zoolog.testing import wait_until

FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 250}
"""librdkafka group settings that make rebalances quick in tests: the broker's minimum
session timeout and a short heartbeat, so members learn of a rebalance within a quarter
second."""

KP_FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 250}
"""The same for kafka-python and aiokafka."""


class Rec(NamedTuple):
    """A consumed record, independent of the client that read it."""
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def from_ck(message: ck.Message) -> Rec:
    return Rec(message.topic(), message.partition(), message.offset(), message.key(),
               message.value())


def from_kp(message: Any) -> Rec:
    """A kafka-python or aiokafka ConsumerRecord."""
    return Rec(message.topic, message.partition, message.offset, message.key, message.value)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int = 1,
                 config: dict[str, str] | None = None) -> None:
    client = admin(bootstrap)  # kept referenced: a collected AdminClient fails its futures
    futures = client.create_topics([NewTopic(name, partitions, 1, config=config or {})],
                                   operation_timeout=20)
    futures[name].result(20)


def produce(bootstrap: str, topic: str, items: Iterable[tuple[bytes | None, bytes]],
            partition: int | None = None, **config: object) -> list[ck.Message]:
    """Produce (key, value) pairs with confluent-kafka, flush, and return the delivery
    reports in delivery order; any delivery error fails the caller."""
    settings: dict[str, object] = {"bootstrap.servers": bootstrap, "linger.ms": 2}
    settings.update(config)
    producer = ck.Producer(settings)
    delivered: list[ck.Message] = []
    errors: list[ck.KafkaError] = []

    def report(err: ck.KafkaError | None, msg: ck.Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            delivered.append(msg)

    for key, value in items:
        extra = {} if partition is None else {"partition": partition}
        producer.produce(topic, key=key, value=value, on_delivery=report, **extra)
        producer.poll(0)
    assert producer.flush(30) == 0, "records still undelivered after 30 s"
    assert not errors, errors
    return delivered


def partitions_of(bootstrap: str, topic: str) -> list[int]:
    metadata = admin(bootstrap).list_topics(topic, timeout=10)
    return sorted(metadata.topics[topic].partitions)


def read_log(bootstrap: str, topic: str, timeout_s: float = 30,
             **config: object) -> list[Rec]:
    """Everything in `topic` from each partition's low watermark to its high watermark
    (read with assign(), no group), in log order per partition."""
    settings: dict[str, object] = {"bootstrap.servers": bootstrap,
                                   "group.id": f"read-log-{time.monotonic_ns()}",
                                   "enable.auto.commit": False,
                                   "auto.offset.reset": "earliest"}
    settings.update(config)
    consumer = ck.Consumer(settings)
    try:
        ends: dict[int, int] = {}
        tps = []
        for p in partitions_of(bootstrap, topic):
            low, high = consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
                tps.append(ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING))
        if not tps:
            return []
        consumer.assign(tps)
        got: list[Rec] = []
        done: dict[int, int] = {p: -1 for p in ends}

        def caught_up() -> bool:
            for message in consumer.consume(500, 0.2):
                assert message.error() is None, message.error()
                got.append(from_ck(message))
                done[message.partition()] = message.offset()
            return all(done[p] >= ends[p] - 1 for p in ends)

        wait_until(caught_up, timeout_s, f"reading {topic} up to its high watermarks {ends}")
        return got
    finally:
        consumer.close()


def by_partition(records: Iterable[Rec]) -> dict[int, list[Rec]]:
    out: dict[int, list[Rec]] = {}
    for record in records:
        out.setdefault(record.partition, []).append(record)
    return out


def assert_each_once(records: list[Rec], expected_values: Iterable[bytes], who: str) -> None:
    """`records` hold exactly `expected_values`, each once (a report of what is off)."""
    values = [r.value for r in records]
    expected = list(expected_values)
    counts: dict[bytes | None, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    duplicated = sorted(v for v, n in counts.items() if n > 1)
    missing = sorted(set(expected) - set(counts))
    unexpected = sorted(set(counts) - set(expected))
    assert not (duplicated or missing or unexpected), (
        f"{who}: {len(duplicated)} duplicated (e.g. {duplicated[:5]}), "
        f"{len(missing)} missing (e.g. {missing[:5]}), {len(unexpected)} unexpected "
        f"(e.g. {unexpected[:5]})")


def assert_per_partition_order(records: Iterable[Rec], who: str) -> None:
    """Within each partition, a reader saw offsets strictly increasing."""
    for partition, recs in by_partition(records).items():
        offsets = [r.offset for r in recs]
        assert offsets == sorted(set(offsets)), f"{who}: partition {partition} out of order"


def order_records(keys: list[str], count: int) -> list[tuple[bytes, bytes]]:
    """`count` orders round-robin over `keys`; each value names its key and the key's
    own sequence number ("customer-3:12"), so per-key order can be checked."""
    seq = {k: 0 for k in keys}
    out = []
    for i in range(count):
        key = keys[i % len(keys)]
        out.append((key.encode(), f"{key}:{seq[key]}".encode()))
        seq[key] += 1
    return out


def assert_per_key_order(records: Iterable[Rec], who: str) -> None:
    """Values "key:n" of one key come in increasing n, and a key stays on one partition."""
    seen: dict[bytes | None, list[int]] = {}
    partition_of: dict[bytes | None, int] = {}
    for r in records:
        assert r.value is not None
        key, _, n = r.value.decode().rpartition(":")
        assert r.key == key.encode(), r
        assert partition_of.setdefault(r.key, r.partition) == r.partition, (
            f"{who}: key {r.key!r} on two partitions")
        seen.setdefault(r.key, []).append(int(n))
    for key, numbers in seen.items():
        assert numbers == sorted(numbers), f"{who}: key {key!r} out of order: {numbers[:20]}"


# --- group members ----------------------------------------------------------------------

TP = tuple[str, int]


@dataclass
class _Member:
    """What a recording group member of either client holds (see CkMember)."""
    name: str
    bootstrap: str
    group: str
    topics: list[str]
    config: dict[str, object] = field(default_factory=dict)
    commit_on_revoke: bool = False
    owned: set[TP] = field(default_factory=set)
    events: list[tuple[str, list[TP]]] = field(default_factory=list)
    processed: list[Rec] = field(default_factory=list)
    cooperative: bool = False

    def client_settled(self) -> bool:
        """Whether the client itself has no rebalance pending that the broker cannot see
        yet (see KpMember.client_settled). librdkafka rejoins on the broker's answers, on
        a subscription change or on a real partition-count change, none of which a
        settled group in these tests has pending."""
        return True


@dataclass
class CkMember(_Member):
    """A confluent-kafka group member that records its rebalance callbacks.

    `owned` follows on_assign/on_revoke/on_lost (eager: replaced on assign, cleared on
    revoke; cooperative: incremental). With `commit_on_revoke` it commits synchronously in
    on_revoke what it has processed, the usual way to hand partitions over without
    duplicates. `processed` is every record poll() returned."""
    errors: list[ck.KafkaError] = field(default_factory=list)
    consumer: ck.Consumer | None = None

    def __post_init__(self) -> None:
        settings: dict[str, object] = {"bootstrap.servers": self.bootstrap,
                                       "group.id": self.group, "client.id": self.name,
                                       "auto.offset.reset": "earliest",
                                       "enable.auto.commit": False, **FAST_GROUP}
        settings.update(self.config)
        self.cooperative = settings.get("partition.assignment.strategy") == \
            "cooperative-sticky"
        self.consumer = ck.Consumer(settings)
        self.consumer.subscribe(self.topics, on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)

    def _tps(self, partitions: list[ck.TopicPartition]) -> list[TP]:
        return sorted((tp.topic, tp.partition) for tp in partitions)

    def _on_assign(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        tps = self._tps(partitions)
        self.events.append(("assign", tps))
        if self.cooperative:
            self.owned |= set(tps)
        else:
            self.owned = set(tps)

    def _on_revoke(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        tps = self._tps(partitions)
        self.events.append(("revoke", tps))
        if self.commit_on_revoke and tps:
            self.commit()
        self.owned -= set(tps)

    def _on_lost(self, consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        tps = self._tps(partitions)
        self.events.append(("lost", tps))
        self.owned -= set(tps)

    def commit(self) -> None:
        assert self.consumer is not None
        try:
            self.consumer.commit(asynchronous=False)
        except ck.KafkaException as exc:
            if exc.args[0].code() != ck.KafkaError._NO_OFFSET:  # nothing new to commit
                raise

    def poll(self, timeout_s: float = 0.02) -> None:
        assert self.consumer is not None
        for message in self.consumer.consume(100, timeout_s):
            if message.error() is not None:
                self.errors.append(message.error())
            else:
                self.processed.append(from_ck(message))

    def assignment(self) -> set[TP]:
        assert self.consumer is not None
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None


def poll_all(members: Iterable[Any], timeout_s: float = 0.02) -> None:
    for member in members:
        if member.consumer is not None:
            member.poll(timeout_s)


def poll_until(members: Iterable[Any], done: Callable[[], bool], timeout_s: float,
               what: str) -> None:
    """Keep polling `members` until `done()` (bounded by `timeout_s`)."""
    members = list(members)

    def check() -> bool:
        poll_all(members)
        return done()

    wait_until(check, timeout_s, what)


def group_state(bootstrap: str, group: str) -> tuple[str, dict[str, set[TP]]]:
    """The broker's view of a group through AdminClient.describe_consumer_groups: its state
    name and each member's client id -> assigned partitions."""
    client = admin(bootstrap)
    description = client.describe_consumer_groups([group])[group].result(10)
    members = {}
    for member in description.members:
        tps = member.assignment.topic_partitions if member.assignment else []
        members[member.client_id] = {(tp.topic, tp.partition) for tp in tps}
    return description.state.name, members


def static_members(bootstrap: str, group: str) -> dict[str, set[TP]]:
    """group.instance.id -> assigned partitions, as the broker describes the group."""
    client = admin(bootstrap)
    description = client.describe_consumer_groups([group])[group].result(10)
    return {m.group_instance_id: {(tp.topic, tp.partition) for tp in
                                  (m.assignment.topic_partitions if m.assignment else [])}
            for m in description.members}


def assert_disjoint(members: Iterable[Any]) -> None:
    """No partition is owned by two members at once (as their callbacks tell it)."""
    owner: dict[TP, str] = {}
    for member in members:
        for tp in member.owned:
            assert tp not in owner, f"{tp} owned by both {owner[tp]} and {member.name}"
            owner[tp] = member.name


def settled(bootstrap: str, group: str, members: list[Any], partitions: set[TP],
            timeout_s: float = 30) -> dict[str, set[TP]]:
    """Poll `members` until the group is Stable at the broker with exactly these members,
    every member's callbacks agree with the broker's assignment and with the client's own
    assignment(), and the partitions are split among them with no overlap and no gap.
    Checks, on every round, that no partition ever has two owners. Returns name -> owned."""
    names = {m.name for m in members}
    last: list[object] = []

    def check() -> bool:
        poll_all(members)
        assert_disjoint(members)
        state, broker_view = group_state(bootstrap, group)
        last[:] = [state, broker_view, {m.name: m.owned for m in members}]
        if state != "STABLE" or set(broker_view) != names:
            return False
        if any(broker_view[m.name] != m.owned or m.assignment() != m.owned for m in members):
            return False
        if not all(m.client_settled() for m in members):
            return False
        owned = [tp for m in members for tp in m.owned]
        return len(owned) == len(set(owned)) and set(owned) == partitions

    try:
        wait_until(check, timeout_s, f"group {group} to settle over {sorted(names)}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen (broker state, broker's assignment, "
                             f"members' callbacks): {last}; events: "
                             f"{ {m.name: m.events for m in members} }") from None
    return {m.name: set(m.owned) for m in members}


# --- a TCP relay that loses Produce responses -------------------------------------------


class ProduceBatch(NamedTuple):
    partition: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def find_batches(frame: bytes, version: int) -> list[ProduceBatch]:
    """The v2 record batches inside a Produce request frame, found by their layout and
    checked by their CRC-32C (so nothing else in the frame can pass for one), each with the
    partition index written just before its records field (int32 size prefix before
    Produce v9, a compact uvarint from v9 on; one batch per partition, as clients send)."""
    out = []
    pos = 15
    while True:
        pos = frame.find(b"\x02", pos + 1)
        if pos < 0:
            return out
        start = pos - 16  # the magic byte sits 16 bytes into a batch
        (length,) = struct.unpack_from(">i", frame, start + 8)
        end = start + 12 + length
        if length < 49 or end > len(frame):
            continue
        (crc,) = struct.unpack_from(">I", frame, start + 17)
        if calc_crc32c(frame[start + 21:end]) != crc:
            continue
        prefix = _uvarint(12 + length + 1) if version >= 9 else struct.pack(">i", 12 + length)
        assert frame[start - len(prefix):start] == prefix, "not one batch per partition"
        (partition,) = struct.unpack_from(">i", frame, start - len(prefix) - 4)
        pid, epoch, seq, count = struct.unpack_from(">qhii", frame, start + 43)
        out.append(ProduceBatch(partition, pid, epoch, seq, count))
        pos = end - 1


class ProduceDroppingProxy:
    """A TCP relay in front of the broker, on a port chosen before the broker starts (so the
    broker can advertise it). It forwards both ways, frame by frame; for the Produce
    requests whose ordinal (1-based, over all connections) is in `drop_after`, it forwards
    the request to the broker and, when the broker's response comes back, closes both
    sides of that connection instead of relaying it: the broker has appended the batch,
    the client never hears so and must send it again.

    `sent` lists every Produce batch relayed to the broker (a batch the client resent
    appears twice), `dropped` counts connections cut."""

    def __init__(self, drop_after: Iterable[int],
                 on_drop: Callable[[], None] | None = None) -> None:
        self.on_drop = on_drop
        """Called (in the relay's thread) when a response is withheld, before the
        connection is cut: e.g. to restart the broker at exactly that moment."""
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = 0
        self.drop_after = set(drop_after)
        self.produce_count = 0
        self.sent: list[ProduceBatch] = []
        self.dropped = 0
        self.frames: list[tuple[str, int, int, int]] = []
        """(direction, api_key, api_version, correlation_id) of every frame relayed
        ("request" or "response"; a response names its request's key and version)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def start(self, target_port: int) -> None:
        self.target_port = target_port
        thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                broker = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:  # the broker is down (restarting): the client retries
                client.close()
                continue
            for s in (client, broker):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, broker]
            thread = threading.Thread(target=self._relay, args=(client, broker), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _relay(self, client: socket.socket, broker: socket.socket) -> None:
        buffers = {client: bytearray(), broker: bytearray()}
        doomed: set[int] = set()  # correlation ids whose responses end the connection
        asked: dict[int, tuple[int, int]] = {}  # correlation id -> (api_key, version)
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([client, broker], [], [], 0.1)
                for src in readable:
                    data = src.recv(65536)
                    if not data:
                        return
                    buf = buffers[src]
                    buf += data
                    while len(buf) >= 4:
                        (size,) = struct.unpack_from(">i", buf)
                        if len(buf) < 4 + size:
                            break
                        frame = bytes(buf[:4 + size])
                        del buf[:4 + size]
                        if src is client:
                            self._from_client(frame, doomed, asked)
                            broker.sendall(frame)
                        else:
                            (correlation_id,) = struct.unpack_from(">i", frame, 4)
                            key, version = asked.pop(correlation_id, (-1, -1))
                            with self._lock:
                                self.frames.append(("response", key, version, correlation_id))
                            if correlation_id in doomed:
                                with self._lock:
                                    self.dropped += 1
                                if self.on_drop is not None:
                                    self.on_drop()
                                return
                            client.sendall(frame)
        except OSError:
            return
        finally:
            for s in (client, broker):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def _from_client(self, frame: bytes, doomed: set[int],
                     asked: dict[int, tuple[int, int]]) -> None:
        api_key, version, correlation_id = struct.unpack_from(">hhi", frame, 4)
        asked[correlation_id] = (api_key, version)
        with self._lock:
            self.frames.append(("request", api_key, version, correlation_id))
        if api_key != 0:
            return
        with self._lock:
            self.produce_count += 1
            self.sent += find_batches(frame, version)
            if self.produce_count in self.drop_after:
                doomed.add(correlation_id)

    def resent(self) -> list[ProduceBatch]:
        """Batches the broker was sent more than once (same partition, producer id, epoch
        and sequence)."""
        with self._lock:
            seen: dict[ProduceBatch, int] = {}
            for batch in self.sent:
                seen[batch] = seen.get(batch, 0) + 1
        return [b for b, n in seen.items() if n > 1]

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for thread in self._threads:
            thread.join(5)


def kp_subscribe(consumer: kafka.KafkaConsumer, topics: list[str],
                 **kwargs: Any) -> kafka.KafkaConsumer:
    """Subscribe a kafka-python consumer once it has the topics' metadata.

    Works around a kafka-python 3.0.12 bug, not a broker one: a consumer that joins
    before it knows its topics' partitions assigns nothing, then rejoins when the metadata
    arrives; if that rejoin (the leader's, started by the metadata change) is still in
    SyncGroup when a short poll(timeout_ms) returns, the next poll finds need_rejoin()
    false and never processes the finished join: the member stays REBALANCING with
    heartbeats off and is expired by the broker."""
    for topic in topics:
        wait_until(lambda t=topic: consumer.partitions_for_topic(t), 10, f"metadata for {topic}")
    consumer.subscribe(topics, **kwargs)
    return consumer


class _KpListener(kafka.consumer.subscription_state.AsyncConsumerRebalanceListener):
    """Records callbacks into a KpMember and, with `commit_on_revoke`, commits what the
    member processed of the revoked partitions before giving them up.

    Two kafka-python 3.0.12 traits shape it: listeners run on the client's IO loop, where
    the blocking commit() is refused, so an async listener awaits the coordinator's own
    synchronous-commit coroutine (there is no public awaitable commit); and under
    cooperative rebalancing the revoked partitions are already out of the subscription
    state when on_partitions_revoked runs, so their positions cannot be read there: the
    member's own record of what it processed since each partition was assigned gives the
    offsets to commit."""

    def __init__(self, member: KpMember) -> None:
        self.member = member
        self.marks: dict[TP, int] = {}  # partition -> len(processed) when assigned

    async def on_partitions_revoked(self, revoked: Any) -> None:
        member = self.member
        tps = sorted((tp.topic, tp.partition) for tp in revoked)
        # first no longer owned, then recorded: another thread watching never sees a
        # recorded revocation of partitions still counted as owned
        member.owned -= set(tps)
        member.events.append(("revoke", tps))
        offsets = {}
        for tp in revoked:
            start = self.marks.pop((tp.topic, tp.partition), len(member.processed))
            done = [r.offset for r in member.processed[start:]
                    if (r.topic, r.partition) == (tp.topic, tp.partition)]
            if done:
                offsets[tp] = OffsetAndMetadata(max(done) + 1, "", -1)
        if member.commit_on_revoke and offsets and member.consumer is not None:
            try:
                await member.consumer._coordinator._commit_offsets_sync_async(offsets)
            except kafka.errors.KafkaError as exc:  # the test sees it in `errors`
                member.errors.append(exc)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        member = self.member
        tps = sorted((tp.topic, tp.partition) for tp in assigned)
        for tp in tps:
            self.marks[tp] = len(member.processed)
        member.events.append(("assign", tps))
        if member.cooperative:
            member.owned |= set(tps)
        else:
            member.owned = set(tps)

    async def on_partitions_lost(self, lost: Any) -> None:
        tps = sorted((tp.topic, tp.partition) for tp in lost)
        self.member.events.append(("lost", tps))
        self.member.owned -= set(tps)
        for tp in tps:
            self.marks.pop(tp, None)


@dataclass
class KpMember(_Member):
    """The kafka-python counterpart of CkMember (same attributes and methods), run as
    kafka-python applications run: one thread per consumer, polling with a long timeout.

    (Polling several kafka-python consumers round-robin from one thread with short
    timeouts trips a kafka-python 3.0.12 bug, not a broker one: when a leader's rejoin was
    started by a change of its metadata snapshot and poll(timeout_ms) returns between the
    leader computing the assignment and the SyncGroup response, need_rejoin() is already
    false at the next poll, so the finished join is never processed; the member stays
    REBALANCING with heartbeats off until the broker expires it. A long poll timeout makes
    that window negligible.)"""
    errors: list[BaseException] = field(default_factory=list)
    consumer: kafka.KafkaConsumer | None = None
    poll_timeout_ms: int = 1000

    def __post_init__(self) -> None:
        settings: dict[str, Any] = {"bootstrap_servers": self.bootstrap,
                                    "group_id": self.group, "client_id": self.name,
                                    "auto_offset_reset": "earliest",
                                    "enable_auto_commit": False, **KP_FAST_GROUP}
        settings.update(self.config)
        strategies = settings.get("partition_assignment_strategy", ())
        self.cooperative = any(getattr(s, "name", "") == "cooperative-sticky"
                               for s in strategies)
        self.consumer = kp_subscribe(kafka.KafkaConsumer(**settings), self.topics,
                                     listener=_KpListener(self))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kp-{self.name}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.consumer is not None
        while not self._stop.is_set():
            try:
                batches = self.consumer.poll(timeout_ms=self.poll_timeout_ms,
                                             max_records=100)
            except kafka.errors.KafkaError as exc:
                self.errors.append(exc)
                if not getattr(exc, "retriable", False):
                    return
                continue
            for records in batches.values():
                self.processed += [from_kp(r) for r in records]

    def commit(self) -> None:
        assert self.consumer is not None
        self.consumer.commit()

    def poll(self, timeout_s: float = 0.02) -> None:
        """Nothing to do: the member's own thread polls."""

    def assignment(self) -> set[TP]:
        assert self.consumer is not None
        return {(tp.topic, tp.partition) for tp in self.consumer.assignment()}

    def client_settled(self) -> bool:
        """False while kafka-python's leader will rejoin on its own: it compares the
        metadata snapshot it assigned from with its latest one, and a leader that
        assigned before its first metadata response after subscribing holds an empty
        snapshot ({}) and rejoins when the topics' partitions arrive, after the broker
        already reported the group Stable. Settled once the snapshot it assigned from
        covers every subscribed topic and is still current (None: not the leader)."""
        assert self.consumer is not None
        coordinator = self.consumer._coordinator
        assigned_from = coordinator._assignment_snapshot
        if assigned_from is None:
            return True
        return (assigned_from == coordinator._metadata_snapshot
                and all(assigned_from.get(topic) for topic in self.topics))

    def close(self) -> None:
        if self.consumer is not None:
            self._stop.set()
            self._thread.join(30)
            self.consumer.close()
            self.consumer = None


# --- a raw Fetch, to look at stored batches -------------------------------------------


class StoredBatch(NamedTuple):
    base_offset: int
    codec: int
    """attributes & 7: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd."""
    record_count: int
    producer_id: int


CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def fetch_batches(port: int, topic: str, partition: int = 0) -> list[StoredBatch]:
    """The record batches of one partition as the broker serves them, read with a
    hand-built Fetch v4 (no client library in between), from offset 0 to the end."""
    out: list[StoredBatch] = []
    offset = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for correlation_id in range(1, 1000):
            name = topic.encode()
            body = struct.pack(">iiiib", -1, 100, 1, 16 << 20, 0)
            body += struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
            body += struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, 16 << 20)
            client_id = b"zoolog-test"
            header = struct.pack(">hhih", 1, 4, correlation_id, len(client_id)) + client_id
            sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
            (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
            frame = _recv_exactly(sock, size)
            pos = 4 + 4  # correlation id, throttle time
            pos += 4  # one topic
            (name_len,) = struct.unpack_from(">h", frame, pos)
            pos += 2 + name_len + 4  # name, one partition
            _p, error, high_watermark, _lso = struct.unpack_from(">ihqq", frame, pos)
            assert error == 0, f"Fetch error {error}"
            pos += 22
            (aborted,) = struct.unpack_from(">i", frame, pos)
            pos += 4 + max(aborted, 0) * 16
            (records_size,) = struct.unpack_from(">i", frame, pos)
            pos += 4
            records = frame[pos:pos + max(records_size, 0)]
            at = 0
            while at + 61 <= len(records):
                base_offset, length = struct.unpack_from(">qi", records, at)
                if at + 12 + length > len(records):
                    break  # a partial batch at the end of the response
                (attributes,) = struct.unpack_from(">h", records, at + 21)
                (pid,) = struct.unpack_from(">q", records, at + 43)
                (count,) = struct.unpack_from(">i", records, at + 57)
                (delta,) = struct.unpack_from(">i", records, at + 23)
                out.append(StoredBatch(base_offset, attributes & 7, count, pid))
                offset = base_offset + delta + 1
                at += 12 + length
            if offset >= high_watermark:
                return out
    raise AssertionError("fetching did not reach the high watermark")


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return bytes(data)
