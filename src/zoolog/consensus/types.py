"""Values the consensus core exchanges with its caller: entries, messages, hard state, Ready.

All frozen or plain data: the core never holds a reference to anything that does I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from zoolog.errors import JuteDecodeError


class EntryKind(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class MsgType(IntEnum):
    PRE_VOTE = 1
    PRE_VOTE_RESP = 2
    VOTE = 3
    VOTE_RESP = 4
    APPEND = 5
    APPEND_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8
    SNAPSHOT = 9
    TIMEOUT_NOW = 10
    READ_INDEX = 11
    READ_INDEX_RESP = 12


class ConfChangeType(IntEnum):
    ADD_VOTER = 0
    ADD_LEARNER = 1
    REMOVE = 2


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    data: bytes = b""
    kind: EntryKind = EntryKind.NORMAL

    def size_bytes(self) -> int:
        return len(self.data) + 24


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: frozenset[int]
    learners: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class ConfChange:
    type: ConfChangeType
    node_id: int

    _LAYOUT = struct.Struct(">bq")

    def to_bytes(self) -> bytes:
        return self._LAYOUT.pack(self.type, self.node_id)

    @classmethod
    def from_bytes(cls, data: bytes) -> ConfChange:
        if len(data) != cls._LAYOUT.size:
            raise JuteDecodeError("bad conf change entry")
        kind, node_id = cls._LAYOUT.unpack(data)
        return cls(ConfChangeType(kind), node_id)

    def apply_to(self, conf: ConfState) -> ConfState:
        voters, learners = set(conf.voters), set(conf.learners)
        voters.discard(self.node_id)
        learners.discard(self.node_id)
        if self.type == ConfChangeType.ADD_VOTER:
            voters.add(self.node_id)
        elif self.type == ConfChangeType.ADD_LEARNER:
            learners.add(self.node_id)
        return ConfState(frozenset(voters), frozenset(learners))


@dataclass(frozen=True, slots=True)
class Snapshot:
    index: int
    term: int
    conf: ConfState
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    term: int = 0
    vote: int = 0
    commit: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    type: MsgType
    to: int
    frm: int
    term: int
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    context: bytes = b""

    def size_bytes(self) -> int:
        return 64 + sum(e.size_bytes() for e in self.entries) + (
            len(self.snapshot.data) if self.snapshot is not None else 0
        )


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once `index` is applied."""

    index: int
    context: bytes


@dataclass(slots=True)
class Ready:
    """What the caller must do, in this order: persist `hard_state`, `snapshot` and
    `entries`; send `messages`; apply `snapshot` then `committed_entries`; serve
    `read_states` once their index is applied; then call `advance(ready)`."""

    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    messages: list[Message] = field(default_factory=list)
    committed_entries: list[Entry] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    soft_leader: int = 0
