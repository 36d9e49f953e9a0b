"""A fake runtime around TransactionCoordinator: requests go through the real codecs (encoded
at their version and decoded again, as the broker would hand them over), every response is
encoded at its request's version, Persists are appended to an in-memory
`__transaction_state` and acknowledged, WriteMarkers are acknowledged, both on demand, and
time moves only when a test says so."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from tests.broker.clock import TickingClock

from zoolog.broker.txn import (
    Persist,
    Reply,
    TransactionCoordinator,
    TransactionMetadata,
    TxnConfig,
    WriteMarkers,
    decode,
)
from zoolog.protocol.kafka._generated.add_offsets_to_txn import AddOffsetsToTxnRequest
from zoolog.protocol.kafka._generated.add_partitions_to_txn import AddPartitionsToTxnRequest
from zoolog.protocol.kafka._generated.end_txn import EndTxnRequest
from zoolog.protocol.kafka._generated.init_producer_id import InitProducerIdRequest
from zoolog.protocol.kafka.errors import Err

START_MS = 1_700_000_000_000
TXN_TIMEOUT_MS = 60_000
FIRST_PRODUCER_ID = 1000
TOPICS = {"t": 3, "u": 2, "__consumer_offsets": 50}

APT = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic


def wire(request: Any, version: int) -> Any:
    """The request as the broker hands it over: encoded at `version` and decoded again."""
    data = request.to_bytes(version)
    decoded, pos = type(request).decode(memoryview(data), 0, version)
    assert pos == len(data)
    return decoded


class Harness(TickingClock):
    def __init__(self, config: TxnConfig | None = None, *, auto_persist: bool = True,
                 auto_markers: bool = True, first_producer_id: int = FIRST_PRODUCER_ID) -> None:
        self.config = config or TxnConfig()
        self.now = START_MS
        self.topics = dict(TOPICS)
        self._pids = itertools.count(first_producer_id)
        self.coord = TransactionCoordinator(self.config, lambda: next(self._pids),
                                            self._known)
        self.auto_persist = auto_persist
        self.auto_markers = auto_markers
        self.pending: list[Persist] = []
        self.pending_markers: list[WriteMarkers] = []
        self.log: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self.markers: list[WriteMarkers] = []
        """Every WriteMarkers handed out, in order."""
        self.answers: dict[int, list[Any]] = {}
        self.versions: dict[int, int] = {}
        self._tokens = itertools.count(1)

    def _known(self, topic: str, partition: int) -> bool:
        return 0 <= partition < self.topics.get(topic, 0)

    # -- driving ------------------------------------------------------------------------

    def drain(self) -> None:
        while True:
            out = self.coord.take_output()
            if not out:
                break
            for item in out:
                if isinstance(item, Reply):
                    assert isinstance(item.token, int)
                    response: Any = item.response
                    response.to_bytes(self.versions[item.token])  # encodable at its version
                    self.answers.setdefault(item.token, []).append(item.response)
                elif isinstance(item, Persist):
                    tid, _entry = decode(item.key, item.value)
                    assert tid == item.transactional_id
                    assert item.partition == self.coord.partition_for(tid)
                    self.pending.append(item)
                else:
                    assert isinstance(item, WriteMarkers)
                    self.markers.append(item)
                    self.pending_markers.append(item)
        if self.auto_persist and self.pending:
            self.flush()
        if self.auto_markers and self.pending_markers:
            self.write_markers()

    def flush(self, count: int | None = None) -> None:
        """Make the oldest `count` (all) pending persists durable, in order."""
        done = 0
        while self.pending and (count is None or done < count):
            persist = self.pending.pop(0)
            self.log.setdefault(persist.partition, []).append((persist.key, persist.value))
            self.coord.persisted(persist, self.now)
            done += 1
            self.drain()

    def write_markers(self, count: int | None = None) -> None:
        """Acknowledge the oldest `count` (all) pending WriteMarkers, in order."""
        done = 0
        while self.pending_markers and (count is None or done < count):
            write = self.pending_markers.pop(0)
            self.coord.markers_written(write, self.now)
            done += 1
            self.drain()

    def settle(self) -> None:
        """Acknowledge everything until nothing is pending."""
        while self.pending or self.pending_markers:
            self.flush()
            self.write_markers()

    def call(self, handler: Callable[..., None], request: Any, version: int) -> int:
        token = next(self._tokens)
        self.versions[token] = version
        handler(token, wire(request, version), version, self.now)
        self.drain()
        return token

    def answer(self, token: int) -> Any:
        """The one response for `token` (None: still waiting)."""
        got = self.answers.get(token, [])
        assert len(got) <= 1, f"token {token} answered {len(got)} times: {got}"
        return got[0] if got else None

    def code(self, token: int) -> int:
        response = self.answer(token)
        assert response is not None, f"token {token} not answered"
        code: int = response.error_code
        return code

    def meta(self, transactional_id: str) -> TransactionMetadata:
        meta = self.coord.transaction(transactional_id)
        assert meta is not None, transactional_id
        return meta

    def all_records(self) -> list[tuple[bytes, bytes | None]]:
        return [r for records in self.log.values() for r in records]

    # -- requests -------------------------------------------------------------------------

    def init(self, tid: str | None, *, timeout_ms: int = TXN_TIMEOUT_MS, version: int = 4,
             producer_id: int = -1, producer_epoch: int = -1) -> int:
        request = InitProducerIdRequest(transactional_id=tid, transaction_timeout_ms=timeout_ms,
                                        producer_id=producer_id, producer_epoch=producer_epoch)
        return self.call(self.coord.init_producer_id, request, version)

    def init_ok(self, tid: str, **kw: Any) -> tuple[int, int]:
        response = self.answer(self.init(tid, **kw))
        assert response is not None and response.error_code == Err.NONE, response
        return response.producer_id, response.producer_epoch

    def add(self, tid: str, producer_id: int, producer_epoch: int,
            partitions: dict[str, list[int]], *, version: int = 3) -> int:
        request = AddPartitionsToTxnRequest(
            v3_and_below_transactional_id=tid, v3_and_below_producer_id=producer_id,
            v3_and_below_producer_epoch=producer_epoch,
            v3_and_below_topics=[APT(name=t, partitions=ps) for t, ps in partitions.items()])
        return self.call(self.coord.add_partitions_to_txn, request, version)

    def add_codes(self, tid: str, producer_id: int, producer_epoch: int,
                  partitions: dict[str, list[int]], **kw: Any) -> dict[tuple[str, int], int]:
        return self.code_of_partitions(self.add(tid, producer_id, producer_epoch, partitions,
                                                **kw))

    def code_of_partitions(self, token: int) -> dict[tuple[str, int], int]:
        """An AddPartitionsToTxn (v0-3) answer as {(topic, partition): error code}."""
        response = self.answer(token)
        assert response is not None, "AddPartitionsToTxn still waiting"
        return {(t.name, p.partition_index): p.partition_error_code
                for t in response.results_by_topic_v3_and_below for p in t.results_by_partition}

    def add_offsets(self, tid: str, producer_id: int, producer_epoch: int, group_id: str, *,
                    version: int = 3) -> int:
        request = AddOffsetsToTxnRequest(transactional_id=tid, producer_id=producer_id,
                                         producer_epoch=producer_epoch, group_id=group_id)
        return self.call(self.coord.add_offsets_to_txn, request, version)

    def end(self, tid: str, producer_id: int, producer_epoch: int, commit: bool, *,
            version: int = 3) -> int:
        request = EndTxnRequest(transactional_id=tid, producer_id=producer_id,
                                producer_epoch=producer_epoch, committed=commit)
        return self.call(self.coord.end_txn, request, version)

    # -- flows ----------------------------------------------------------------------------

    def begin(self, tid: str, partitions: dict[str, list[int]] | None = None,
              **kw: Any) -> tuple[int, int]:
        """InitProducerId, then AddPartitionsToTxn: an Ongoing transaction's (pid, epoch)."""
        pid, epoch = self.init_ok(tid, **kw)
        codes = self.add_codes(tid, pid, epoch, partitions or {"t": [0, 1]})
        assert set(codes.values()) == {Err.NONE}, codes
        return pid, epoch
