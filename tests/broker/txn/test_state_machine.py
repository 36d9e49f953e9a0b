"""Hypothesis RuleBasedStateMachine: producers of three transactional ids (and their zombies,
with stale epochs) send InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn at
any version, in any order, while records and markers become durable late, time passes
(timeouts, expiry), an operator aborts, and the node crashes (records in flight are lost)
and reloads. Checked after every step:

- every token answered at most once (exactly once at the end, unless lost in a crash);
- at most one record in flight per transactional id;
- what memory holds of a settled id is what the log's last record for it says, and an id
  that memory does not hold is tombstoned (or was never durable) in the log;
- every state change of an id goes along legal transitions;
- epochs handed to a client never go down for a producer id, and the durable epoch is never
  below one handed out;
- Prepare* records follow an Ongoing record of that producer (same epoch, or the epoch
  before it for a fencing abort); every WriteMarkers matches a durable Prepare* record; a
  COMMIT marker only for a producer that asked to commit at that epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tests.broker.txn.harness import Harness

from zoolog.broker.txn import (
    VALID_PREVIOUS,
    TransactionMetadata,
    TxnConfig,
    TxnLogEntry,
    TxnState,
    decode,
    encode_value,
)
from zoolog.protocol.kafka.errors import Err

S = TxnState
TIDS = ("a", "b", "c")
PARTITIONS = [("t", 0), ("t", 1), ("u", 0)]
UNKNOWN = ("nope", 0)
MOSTLY_NOT = st.sampled_from([False, False, False, True])
CONFIG = TxnConfig(transaction_max_timeout_ms=20_000,
                   transaction_abort_timed_out_transaction_cleanup_interval_ms=1_000,
                   transactional_id_expiration_ms=120_000,
                   transaction_state_log_num_partitions=2)


def _closure() -> dict[TxnState, frozenset[TxnState]]:
    """State -> every state reachable from it along legal transitions (itself included)."""
    nexts: dict[TxnState, set[TxnState]] = {s: set() for s in S}
    for after, befores in VALID_PREVIOUS.items():
        for before in befores:
            nexts[before].add(after)
    reach: dict[TxnState, frozenset[TxnState]] = {}
    for start in S:
        seen, todo = {start}, [start]
        while todo:
            for n in nexts[todo.pop()]:
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        reach[start] = frozenset(seen)
    return reach


REACHABLE = _closure()


@dataclass
class Producer:
    producer_id: int = -1
    producer_epoch: int = -1
    old: list[tuple[int, int]] = field(default_factory=list)


class TxnMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(CONFIG, auto_persist=False, auto_markers=False)
        self.producers = {t: Producer() for t in TIDS}
        self.sent: dict[int, tuple[str, str, int, int]] = {}  # token -> (tid, kind, pid, epoch)
        self.lost: set[int] = set()
        self.handled: set[int] = set()
        self.returned: dict[tuple[str, int], int] = {}  # (tid, pid) -> highest epoch handed out
        self.commits: set[tuple[str, int, int]] = set()
        self.markers_checked = 0
        self.observed: dict[str, tuple[TransactionMetadata, TxnState]] = {}
        self.crashes = 0

    # -- plumbing -----------------------------------------------------------------------

    def _send(self, tid: str, kind: str, token: int, pid: int, epoch: int) -> None:
        self.sent[token] = (tid, kind, pid, epoch)
        self._take_answers()

    def _take_answers(self) -> None:
        for token, got in self.h.answers.items():
            if token in self.handled:
                continue
            self.handled.add(token)
            tid, kind, _pid, _epoch = self.sent[token]
            response: Any = got[0]
            if kind == "init" and response.error_code == Err.NONE:
                p = self.producers[tid]
                if p.producer_id >= 0:
                    p.old.append((p.producer_id, p.producer_epoch))
                p.producer_id, p.producer_epoch = response.producer_id, response.producer_epoch
                key = (tid, response.producer_id)
                assert response.producer_epoch >= self.returned.get(key, -1), (key, response)
                self.returned[key] = response.producer_epoch

    def _who(self, tid: str, zombie: bool) -> tuple[int, int]:
        p = self.producers[tid]
        if zombie and p.old:
            return p.old[-1]
        return p.producer_id, p.producer_epoch

    # -- clients --------------------------------------------------------------------------

    @rule(tid=st.sampled_from(TIDS), version=st.integers(0, 5), kip360=st.booleans(),
          timeout_ms=st.sampled_from([3_000, 20_000, 20_000, 20_000, 0, 30_000]))
    def init(self, tid: str, version: int, kip360: bool, timeout_ms: int) -> None:
        pid, epoch = self._who(tid, zombie=False)
        named = kip360 and version >= 3 and pid >= 0
        token = self.h.init(tid, version=version, timeout_ms=timeout_ms,
                            producer_id=pid if named else -1,
                            producer_epoch=epoch if named else -1)
        self._send(tid, "init", token, pid, epoch)

    @rule(tid=st.sampled_from(TIDS), zombie=MOSTLY_NOT, version=st.integers(0, 3),
          parts=st.lists(st.sampled_from(PARTITIONS), min_size=1, max_size=3),
          unknown=MOSTLY_NOT)
    def add(self, tid: str, zombie: bool, version: int, parts: list[tuple[str, int]],
            unknown: bool) -> None:
        pid, epoch = self._who(tid, zombie)
        if unknown:
            parts = [*parts, UNKNOWN]
        wanted: dict[str, list[int]] = {}
        for topic, partition in parts:
            wanted.setdefault(topic, []).append(partition)
        token = self.h.add(tid, pid, epoch, wanted, version=version)
        self._send(tid, "add", token, pid, epoch)

    @rule(tid=st.sampled_from(TIDS), version=st.integers(0, 5))
    def begin(self, tid: str, version: int) -> None:
        """A producer that gets going: InitProducerId and AddPartitionsToTxn, each made
        durable at once (whatever else was in flight too)."""
        self.init(tid, version, kip360=True, timeout_ms=20_000)
        self.settle()
        self.add(tid, zombie=False, version=min(version, 3), parts=[PARTITIONS[0]],
                 unknown=False)
        self.settle()

    @rule(tid=st.sampled_from(TIDS), zombie=MOSTLY_NOT, version=st.integers(0, 4),
          group=st.sampled_from(["g1", "g2"]))
    def add_offsets(self, tid: str, zombie: bool, version: int, group: str) -> None:
        pid, epoch = self._who(tid, zombie)
        token = self.h.add_offsets(tid, pid, epoch, group, version=version)
        self._send(tid, "offsets", token, pid, epoch)

    @rule(tid=st.sampled_from(TIDS), zombie=MOSTLY_NOT, version=st.integers(0, 4),
          commit=st.sampled_from([True, True, False]))
    def end(self, tid: str, zombie: bool, version: int, commit: bool) -> None:
        pid, epoch = self._who(tid, zombie)
        if commit:
            self.commits.add((tid, pid, epoch))
        token = self.h.end(tid, pid, epoch, commit, version=version)
        self._send(tid, "end", token, pid, epoch)

    @rule(tid=st.sampled_from(TIDS), zombie=MOSTLY_NOT,
          part=st.sampled_from([*PARTITIONS, UNKNOWN]))
    def produce(self, tid: str, zombie: bool, part: tuple[str, int]) -> None:
        pid, epoch = self._who(tid, zombie)
        code, message = self.h.coord.verify_produce(tid, pid, epoch, *part)
        meta = self.h.coord.transaction(tid)
        ok = (meta is not None and meta.state is S.ONGOING
              and meta.pending_state in (None, S.ONGOING)
              and (meta.producer_id, meta.producer_epoch) == (pid, epoch)
              and part in meta.partitions)
        assert (code == Err.NONE) == ok, (code, message, meta)

    # -- the runtime ----------------------------------------------------------------------

    @precondition(lambda self: bool(self.h.pending))
    @rule(count=st.integers(1, 4))
    def persist(self, count: int) -> None:
        self.h.flush(count)
        self._take_answers()

    @precondition(lambda self: bool(self.h.pending_markers))
    @rule(count=st.integers(1, 2))
    def markers(self, count: int) -> None:
        self.h.write_markers(count)
        self._take_answers()

    @precondition(lambda self: bool(self.h.pending or self.h.pending_markers))
    @rule()
    def settle(self) -> None:
        """Everything in flight becomes durable."""
        self.h.settle()
        self._take_answers()

    @rule(ms=st.sampled_from([100, 500, 1_000, 4_000, 25_000]))
    def advance(self, ms: int) -> None:
        self.h.advance(ms)
        self._take_answers()

    @precondition(lambda self: self.crashes < 2)
    @rule()
    def crash(self) -> None:
        """The node dies: records and markers in flight are lost, so are their answers; a
        new coordinator loads the log."""
        self.crashes += 1
        old = self.h
        self.lost |= {t for t in self.sent if t not in old.answers}
        fresh = Harness(CONFIG, auto_persist=False, auto_markers=False,
                        first_producer_id=10_000 * (self.crashes + 1))
        fresh.now = old.now
        fresh.log = {p: list(rs) for p, rs in old.log.items()}
        fresh.markers = list(old.markers)
        fresh.answers = old.answers
        fresh.versions = old.versions
        fresh._tokens = old._tokens
        for partition in range(CONFIG.transaction_state_log_num_partitions):
            fresh.coord.load(partition, fresh.log.get(partition, []), fresh.now)
        fresh.drain()
        assert fresh.coord.corrupt_records == 0
        self.h = fresh
        self.observed.clear()

    # -- invariants -----------------------------------------------------------------------

    def _last_records(self) -> dict[str, TxnLogEntry | None]:
        last: dict[str, TxnLogEntry | None] = {}
        for records in self.h.log.values():
            for key, value in records:
                tid, entry = decode(key, value)
                last[tid] = entry
        return last

    @invariant()
    def answered_at_most_once(self) -> None:
        for token, got in self.h.answers.items():
            assert len(got) == 1, (token, self.sent.get(token), got)
            assert token not in self.lost

    @invariant()
    def one_record_in_flight_per_id(self) -> None:
        tids = [p.transactional_id for p in self.h.pending]
        assert len(tids) == len(set(tids)), tids
        for persist in self.h.pending:
            meta = self.h.coord.transaction(persist.transactional_id)
            assert meta is not None and meta.pending is not None

    @invariant()
    def memory_is_the_log(self) -> None:
        last = self._last_records()
        held = {m.transactional_id: m for m in self.h.coord.transactions()}
        for tid, meta in held.items():
            if meta.pending is None and meta.state is not S.PREPARE_EPOCH_FENCE:
                entry = last.get(tid)
                assert entry is not None and encode_value(entry) == encode_value(meta), (
                    tid, entry, meta)
        for tid, entry in last.items():
            if tid not in held:
                assert entry is None, (tid, entry)

    @invariant()
    def transitions_are_legal(self) -> None:
        for meta in self.h.coord.transactions():
            tid = meta.transactional_id
            seen = self.observed.get(tid)
            if seen is not None and seen[0] is meta:
                assert meta.state in REACHABLE[seen[1]], (tid, seen[1], meta.state)
            self.observed[tid] = (meta, meta.state)

    @invariant()
    def epochs_never_go_down(self) -> None:
        for meta in self.h.coord.transactions():
            handed = self.returned.get((meta.transactional_id, meta.producer_id))
            if handed is not None:
                assert meta.producer_epoch >= handed, (meta, handed)

    @invariant()
    def markers_follow_durable_decisions(self) -> None:
        history: dict[str, list[TxnLogEntry | None]] = {}
        for records in self.h.log.values():
            for key, value in records:
                tid, entry = decode(key, value)
                history.setdefault(tid, []).append(entry)
        prepares: set[tuple[str, int, int, bool, tuple[tuple[str, int], ...]]] = set()
        for tid, entries in history.items():
            for before, entry in zip([None, *entries], entries, strict=False):
                if entry is None or entry.state not in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
                    continue
                assert before is not None and before.state is S.ONGOING, (tid, before, entry)
                assert before.producer_id == entry.producer_id
                bumped = entry.producer_epoch - before.producer_epoch
                assert bumped == 0 or (bumped == 1 and entry.state is S.PREPARE_ABORT), (
                    before, entry)
                assert entry.partitions == before.partitions
                prepares.add((tid, entry.producer_id, entry.producer_epoch,
                              entry.state is S.PREPARE_COMMIT, tuple(sorted(entry.partitions))))
        for write in self.h.markers[self.markers_checked:]:
            assert write.partitions, write
            assert (write.transactional_id, write.producer_id, write.producer_epoch,
                    write.commit, write.partitions) in prepares, write
            if write.commit:
                assert (write.transactional_id, write.producer_id,
                        write.producer_epoch) in self.commits, write
        self.markers_checked = len(self.h.markers)

    def teardown(self) -> None:
        """Quiet clients, everything durable, time enough: all requests answered once."""
        for _ in range(20):
            self.h.settle()
            self.h.advance(5_000)
        self.h.settle()
        self._take_answers()
        unanswered = [t for t in self.sent if t not in self.h.answers and t not in self.lost]
        assert unanswered == [], [(t, self.sent[t]) for t in unanswered]
        self.answered_at_most_once()
        self.memory_is_the_log()
        self.markers_follow_durable_decisions()
        for meta in self.h.coord.transactions():
            assert meta.pending is None and meta.state in (S.EMPTY, S.COMPLETE_COMMIT,
                                                           S.COMPLETE_ABORT), meta


TxnMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                        deadline=None)
TestTxnMachine = TxnMachine.TestCase
