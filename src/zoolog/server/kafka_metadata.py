"""The broker's metadata in the coordination service, through the ZooKeeper protocol.

`ZkMetadataStore` is the only part of the broker that talks to the coordination service
(zoolog's own or an Apache ZooKeeper / zoolog ensemble given with `--zookeeper`). It uses
zoolog's asyncio ZooKeeper client and Kafka's ZooKeeper-mode layout (`broker.znodes`):

- start: make sure the container paths exist; read or create the cluster id; register the
  broker (`/brokers/ids/<id>`, ephemeral) and become the controller (`/controller`,
  ephemeral; `/controller_epoch` counts elections); read every topic (assignment, partition
  states, config overrides) into `TopicInfo`s;
- the session: its id and password are kept in the broker's data directory, so a broker
  restarted after `kill -9` resumes the session its ephemerals belong to instead of waiting
  for them to expire; a lost connection is re-established with the same session, and an
  expired session is replaced and the ephemerals written again;
- writes, each one ZooKeeper `multi` so a topic never exists half-written: create a topic
  (assignment, every partition's state, its config), add partitions, replace a topic's
  config (plus a `/config/changes` notification, as Kafka writes one), delete a topic, and
  reserve a block of producer ids (versioned compare-and-set on `/latest_producer_id_block`).

Changes made by others are followed, as Kafka's controller follows them: children watches
on `/brokers/topics` (a topic created by another tool is opened), `/admin/delete_topics` (a
deletion asked for by a tool, Kafka's `kafka-topics --delete` in ZooKeeper mode, is carried
out) and `/config/changes` (a topic's config changed elsewhere is reloaded) call the
`MetadataListener` the broker gives `watch()`.

Failures surface as `ZkError`; callers turn them into Kafka errors for the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from zoolog.broker import znodes
from zoolog.broker.metadata import PartitionInfo, TopicInfo
from zoolog.broker.topics_api import NewTopic
from zoolog.client.zk import Session, ZkClient
from zoolog.coord.acl import OPEN_ACL_UNSAFE
from zoolog.coord.errors import Code, ZkError
from zoolog.protocol.zk._generated.jute_records import (
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    SetDataRequest,
)
from zoolog.protocol.zk.opcodes import OpCode

log = logging.getLogger(__name__)

EPHEMERAL = 1
SEQUENTIAL = 2
SESSION_FILE = "zk-session"
CHILDREN_CHANGED = 4
WATCHED = (znodes.BROKER_TOPICS, znodes.DELETE_TOPICS, znodes.CONFIG_CHANGES)

Listener = Callable[[str, list[str]], Awaitable[None]]
"""Called with a watched path and its children when they change (and once at start)."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class ZkMetadataStore:
    """See the module docstring."""

    def __init__(self, hosts: str, data_dir: Path, broker_id: int,
                 session_timeout_ms: int = 18_000) -> None:
        self.hosts = hosts
        self.data_dir = data_dir
        self.broker_id = broker_id
        self.session_timeout_ms = session_timeout_ms
        self.client: ZkClient | None = None
        self.cluster_id = ""
        self._registration: znodes.BrokerRegistration | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self.reconnects = 0
        self._listener: Listener | None = None
        self._watcher: asyncio.Task[None] | None = None

    # --- session ------------------------------------------------------------------------

    def _saved_session(self) -> Session | None:
        path = self.data_dir / SESSION_FILE
        try:
            session_hex, password_hex = path.read_text().split()
            return Session(int(session_hex, 16), bytes.fromhex(password_hex),
                           self.session_timeout_ms)
        except (OSError, ValueError):
            return None

    def _save_session(self, session: Session) -> None:
        path = self.data_dir / SESSION_FILE
        temp = path.with_suffix(".tmp")
        temp.write_text(f"{session.session_id:x} {session.password.hex()}\n")
        temp.replace(path)

    async def _connect(self) -> ZkClient:
        saved = self._saved_session()
        if saved is not None:
            try:
                client = await ZkClient.connect(self.hosts, self.session_timeout_ms,
                                                session=saved)
                log.info("resumed coordination session %#x", saved.session_id)
                return client
            except (TimeoutError, ZkError, OSError) as exc:
                log.info("could not resume coordination session %#x (%s); opening a new one",
                         saved.session_id, exc)
        client = await ZkClient.connect(self.hosts, self.session_timeout_ms)
        assert client.session is not None
        self._save_session(client.session)
        return client

    @property
    def zk(self) -> ZkClient:
        if self.client is None:
            raise ZkError(Code.CONNECTIONLOSS, "not connected to the coordination service")
        return self.client

    # --- start and registration ---------------------------------------------------------

    async def start(self, registration: znodes.BrokerRegistration) -> None:
        self._registration = registration
        self.client = await self._connect()
        await self._ensure_chroot()
        for path in znodes.PERSISTENT_PATHS:
            await self._ensure(path)
        self.cluster_id = await self._cluster_id()
        await self._register()
        self._supervisor = asyncio.create_task(self._supervise())

    async def _ensure_chroot(self) -> None:
        """A connect string's chroot (`host:2181/kafka`) is created if missing, as Kafka does."""
        client = self.zk
        chroot, client.chroot = client.chroot, ""
        try:
            prefix = ""
            for part in [p for p in chroot.split("/") if p]:
                prefix += "/" + part
                await self._ensure(prefix)
        finally:
            client.chroot = chroot

    async def _ensure(self, path: str, data: bytes = b"") -> None:
        with contextlib.suppress(ZkError):
            await self.zk.create(path, data)
        if await self.zk.exists(path) is None:
            raise ZkError(Code.NONODE, f"cannot create {path}")

    async def _cluster_id(self) -> str:
        try:
            data, _ = await self.zk.get(znodes.CLUSTER_ID)
            return znodes.parse_cluster_id(data)
        except ZkError as exc:
            if exc.code != Code.NONODE:
                raise
        cluster_id = znodes.uuid_to_id(uuid.uuid4().bytes)
        try:
            await self.zk.create(znodes.CLUSTER_ID, znodes.cluster_id_value(cluster_id))
        except ZkError as exc:
            if exc.code != Code.NODEEXISTS:  # type: ignore[comparison-overlap]
                raise
            data, _ = await self.zk.get(znodes.CLUSTER_ID)
            return znodes.parse_cluster_id(data)
        return cluster_id

    async def _register(self) -> None:
        """Write our ephemerals for the current session (or take them over if they are
        already ours, after a resumed session)."""
        assert self._registration is not None
        registration = znodes.BrokerRegistration(
            self._registration.broker_id, self._registration.host, self._registration.port,
            self._registration.rack, _now_ms())
        await self._own_ephemeral(znodes.broker_path(self.broker_id), registration.value())
        await self._own_ephemeral(znodes.CONTROLLER,
                                  znodes.controller_value(self.broker_id, _now_ms()))
        await self._bump_controller_epoch()

    async def _own_ephemeral(self, path: str, value: bytes) -> None:
        session = self.zk.session
        assert session is not None
        deadline = time.monotonic() + self.session_timeout_ms / 1000 + 5
        while True:
            try:
                await self.zk.create(path, value, flags=EPHEMERAL)
                return
            except ZkError as exc:
                if exc.code != Code.NODEEXISTS:
                    raise
            stat = await self.zk.exists(path)
            if stat is not None and stat.ephemeralOwner == session.session_id:
                await self.zk.set(path, value)
                return
            if stat is not None and time.monotonic() > deadline:
                raise ZkError(Code.NODEEXISTS,
                              f"{path} is held by another session ({stat.ephemeralOwner:#x}): "
                              f"is another broker with id {self.broker_id} running?")
            await asyncio.sleep(0.5)  # the previous owner's session has yet to expire

    async def _bump_controller_epoch(self) -> None:
        try:
            data, stat = await self.zk.get(znodes.CONTROLLER_EPOCH)
            await self.zk.set(znodes.CONTROLLER_EPOCH, str(int(data or b"0") + 1).encode(),
                              stat.version)
        except ZkError as exc:
            if exc.code != Code.NONODE:
                raise
            with contextlib.suppress(ZkError):
                await self.zk.create(znodes.CONTROLLER_EPOCH, b"1")

    async def _supervise(self) -> None:
        """Keep the session: reconnect when the connection drops, re-register when the
        session was lost."""
        while not self._closing:
            client = self.client
            assert client is not None
            closed = await client.wait_closed(3600)
            if self._closing:
                return
            if not closed:
                continue
            log.warning("lost the coordination service connection; reconnecting")
            while not self._closing:
                try:
                    self.client = await self._connect()
                    self.reconnects += 1
                    await self._register()
                    self._start_watching()  # watches do not survive a new connection
                    break
                except (TimeoutError, ZkError, OSError) as exc:
                    log.warning("coordination service unreachable (%s); retrying", exc)
                    await asyncio.sleep(1)

    # --- following changes made by others ----------------------------------------------

    def watch(self, listener: Listener) -> None:
        """Call `listener(path, children)` for each of WATCHED now and whenever its children
        change (one task; re-armed after a reconnection)."""
        self._listener = listener
        self._start_watching()

    def _start_watching(self) -> None:
        if self._listener is None:
            return
        if self._watcher is not None:
            self._watcher.cancel()
        self._watcher = asyncio.get_running_loop().create_task(self._watch_loop())

    async def _watch_loop(self) -> None:
        client = self.zk
        assert self._listener is not None
        try:
            for path in WATCHED:
                await self._arm(client, path)
            while not self._closing:
                event = await client.events.get()
                if event.type == CHILDREN_CHANGED and event.path in WATCHED:
                    await self._arm(client, event.path)
        except (ZkError, ConnectionError, OSError) as exc:
            log.info("stopped following metadata changes (%s); the reconnection restarts it",
                     exc)

    async def _arm(self, client: ZkClient, path: str) -> None:
        assert self._listener is not None
        children, _ = await client.get_children(path, watch=True)
        try:
            await self._listener(path, children)
        except Exception:
            log.exception("handling a change of %s failed", path)

    async def children(self, path: str) -> list[str]:
        """The children of `path` now (a watch's list may be older than a change this
        broker made meanwhile)."""
        names, _ = await self.zk.get_children(path)
        return list(names)

    async def read_config_change(self, name: str) -> str | None:
        """The topic a `/config/changes/<name>` notification is about (None otherwise)."""
        try:
            data, _ = await self.zk.get(f"{znodes.CONFIG_CHANGES}/{name}")
        except ZkError:
            return None
        return znodes.parse_config_change(data)

    async def load_topic_config(self, name: str) -> dict[str, str]:
        try:
            data, _ = await self.zk.get(znodes.topic_config_path(name))
        except ZkError as exc:
            if exc.code != Code.NONODE:
                raise
            return {}
        return znodes.parse_topic_config(data)

    async def finish_deletion_request(self, name: str) -> None:
        """Remove `/admin/delete_topics/<name>` once the topic is gone."""
        with contextlib.suppress(ZkError):
            await self.zk.delete(f"{znodes.DELETE_TOPICS}/{name}")

    async def close(self) -> None:
        """Close the session: our ephemerals go at once (a clean shutdown)."""
        self._closing = True
        if self._watcher is not None:
            self._watcher.cancel()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self.client is not None:
            await self.client.close()
            (self.data_dir / SESSION_FILE).unlink(missing_ok=True)

    async def disconnect(self) -> None:
        """Drop the connection but keep the session (what a crash leaves behind)."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        if self.client is not None:
            await self.client.disconnect()

    # --- reads --------------------------------------------------------------------------

    async def load_topics(self) -> list[TopicInfo]:
        names, _ = await self.zk.get_children(znodes.BROKER_TOPICS)
        topics = []
        for name in names:
            info = await self.load_topic(name)
            if info is not None:
                topics.append(info)
        return topics

    async def load_topic(self, name: str) -> TopicInfo | None:
        try:
            data, _ = await self.zk.get(znodes.topic_path(name))
        except ZkError as exc:
            if exc.code == Code.NONODE:
                return None
            raise
        assignment = znodes.TopicAssignment.parse(data)
        partitions = []
        for index, replicas in sorted(assignment.replicas.items()):
            try:
                state_data, _ = await self.zk.get(znodes.partition_state_path(name, index))
                state = znodes.PartitionState.parse(state_data)
            except ZkError as exc:
                if exc.code != Code.NONODE:
                    raise
                state = znodes.PartitionState(replicas[0], 0, list(replicas))
            partitions.append(PartitionInfo(index, state.leader, state.leader_epoch,
                                            list(replicas), list(state.isr)))
        try:
            config_data, _ = await self.zk.get(znodes.topic_config_path(name))
            configs = znodes.parse_topic_config(config_data)
        except ZkError as exc:
            if exc.code != Code.NONODE:
                raise
            configs = {}
        return TopicInfo(name, assignment.topic_id, partitions, configs)

    # --- writes -------------------------------------------------------------------------

    async def _multi(self, ops: list[tuple[int, Any]]) -> None:
        results = await self.zk.multi(ops)
        for _, err, _ in results:
            if err not in (0, Code.RUNTIMEINCONSISTENCY):
                raise ZkError(Code(err))
        if any(err for _, err, _ in results):
            raise ZkError(Code.RUNTIMEINCONSISTENCY, "multi failed")

    @staticmethod
    def _create(path: str, data: bytes) -> tuple[int, Any]:
        return OpCode.create, CreateRequest(path, data, list(OPEN_ACL_UNSAFE), 0)

    async def create_topic(self, topic: NewTopic) -> TopicInfo:
        """Create `topic` (ZkError NODEEXISTS if it already exists)."""
        topic_id = uuid.uuid4().bytes
        assignment = znodes.TopicAssignment(topic_id, topic.replicas)
        ops = [self._create(znodes.topic_path(topic.name), assignment.value()),
               self._create(znodes.partitions_path(topic.name), b"")]
        partitions = []
        for index, replicas in sorted(topic.replicas.items()):
            state = znodes.PartitionState(replicas[0], 0, list(replicas))
            ops.append(self._create(znodes.partition_path(topic.name, index), b""))
            ops.append(self._create(znodes.partition_state_path(topic.name, index),
                                    state.value()))
            partitions.append(PartitionInfo(index, state.leader, 0, list(replicas),
                                            list(replicas)))
        config_path = znodes.topic_config_path(topic.name)
        if await self.zk.exists(config_path) is not None:
            ops.append((OpCode.setData, SetDataRequest(
                config_path, znodes.topic_config_value(topic.configs), -1)))
        else:
            ops.append(self._create(config_path, znodes.topic_config_value(topic.configs)))
        await self._multi(ops)
        return TopicInfo(topic.name, topic_id, partitions, dict(topic.configs))

    async def add_partitions(self, info: TopicInfo, added: dict[int, list[int]]) -> TopicInfo:
        replicas = {p.index: list(p.replicas) for p in info.partitions}
        replicas.update(added)
        assignment = znodes.TopicAssignment(info.topic_id, replicas)
        _, stat = await self.zk.get(znodes.topic_path(info.name))
        ops: list[tuple[int, Any]] = [(OpCode.setData, SetDataRequest(
            znodes.topic_path(info.name), assignment.value(), stat.version))]
        partitions = list(info.partitions)
        for index, brokers in sorted(added.items()):
            state = znodes.PartitionState(brokers[0], 0, list(brokers))
            ops.append(self._create(znodes.partition_path(info.name, index), b""))
            ops.append(self._create(znodes.partition_state_path(info.name, index),
                                    state.value()))
            partitions.append(PartitionInfo(index, brokers[0], 0, list(brokers), list(brokers)))
        await self._multi(ops)
        return TopicInfo(info.name, info.topic_id, partitions, dict(info.configs))

    async def set_topic_config(self, name: str, configs: dict[str, str]) -> None:
        path = znodes.topic_config_path(name)
        ops: list[tuple[int, Any]] = []
        if await self.zk.exists(path) is None:
            ops.append(self._create(path, znodes.topic_config_value(configs)))
        else:
            ops.append((OpCode.setData, SetDataRequest(path, znodes.topic_config_value(configs),
                                                       -1)))
        ops.append((OpCode.create, CreateRequest(
            f"{znodes.CONFIG_CHANGES}/config_change_", znodes.config_change_value(name),
            list(OPEN_ACL_UNSAFE), SEQUENTIAL)))
        await self._multi(ops)

    async def bump_leader_epoch(self, info: TopicInfo) -> TopicInfo:
        """Start a new leader epoch on every partition of `info` (a broker (re)start makes
        it leader again, as Kafka's controller does), writing the states."""
        ops: list[tuple[int, Any]] = []
        partitions = []
        for p in info.partitions:
            state = znodes.PartitionState(self.broker_id, p.leader_epoch + 1, list(p.isr))
            ops.append((OpCode.setData, SetDataRequest(
                znodes.partition_state_path(info.name, p.index), state.value(), -1)))
            partitions.append(PartitionInfo(p.index, self.broker_id, p.leader_epoch + 1,
                                            list(p.replicas), list(p.isr)))
        if ops:
            await self._multi(ops)
        return TopicInfo(info.name, info.topic_id, partitions, dict(info.configs))

    async def complete_topic(self, info: TopicInfo) -> None:
        """Write the partition states a topic created by another tool lacks (Kafka's
        controller writes them when it sees a new `/brokers/topics/<t>`)."""
        ops: list[tuple[int, Any]] = []
        if await self.zk.exists(znodes.partitions_path(info.name)) is None:
            ops.append(self._create(znodes.partitions_path(info.name), b""))
        for p in info.partitions:
            if await self.zk.exists(znodes.partition_state_path(info.name, p.index)) is None:
                if await self.zk.exists(znodes.partition_path(info.name, p.index)) is None:
                    ops.append(self._create(znodes.partition_path(info.name, p.index), b""))
                state = znodes.PartitionState(p.leader, p.leader_epoch, list(p.isr))
                ops.append(self._create(znodes.partition_state_path(info.name, p.index),
                                        state.value()))
        if ops:
            await self._multi(ops)

    async def delete_topic(self, info: TopicInfo) -> None:
        """Remove every znode of the topic (the ones that exist), in one multi."""
        ops: list[tuple[int, Any]] = []
        for p in info.partitions:
            for path in (znodes.partition_state_path(info.name, p.index),
                         znodes.partition_path(info.name, p.index)):
                if await self.zk.exists(path) is not None:
                    ops.append((OpCode.delete, DeleteRequest(path, -1)))
        for path in (znodes.partitions_path(info.name), znodes.topic_path(info.name),
                     znodes.topic_config_path(info.name)):
            if await self.zk.exists(path) is not None:
                ops.append((OpCode.delete, DeleteRequest(path, -1)))
        if ops:
            await self._multi(ops)

    async def reserve_producer_ids(self) -> tuple[int, int]:
        """Reserve the next block of producer ids: (first, last), both inclusive."""
        while True:
            try:
                data, stat = await self.zk.get(znodes.PRODUCER_ID_BLOCK)
            except ZkError as exc:
                if exc.code != Code.NONODE:
                    raise
                start, end = 0, znodes.PRODUCER_ID_BLOCK_SIZE - 1
                try:
                    await self.zk.create(znodes.PRODUCER_ID_BLOCK, znodes.producer_id_block_value(
                        self.broker_id, start, end))
                    return start, end
                except ZkError as again:
                    if again.code != Code.NODEEXISTS:
                        raise
                    continue
            _, last_end = znodes.parse_producer_id_block(data)
            start = last_end + 1
            end = start + znodes.PRODUCER_ID_BLOCK_SIZE - 1
            try:
                await self._multi([
                    (OpCode.check, CheckVersionRequest(znodes.PRODUCER_ID_BLOCK, stat.version)),
                    (OpCode.setData, SetDataRequest(znodes.PRODUCER_ID_BLOCK,
                                                    znodes.producer_id_block_value(
                                                        self.broker_id, start, end),
                                                    stat.version))])
                return start, end
            except ZkError as exc:
                if exc.code not in (Code.BADVERSION, Code.RUNTIMEINCONSISTENCY):
                    raise
