"""KIP-227 incremental fetch sessions: `FetchSessionCache` on its own (the table in its
docstring), then the same through `FetchOperation` on a Broker: an incremental response
lists only the partitions that changed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.broker.helpers import (
    START_MS,
    append,
    client_batch,
    new_broker,
    slice_bytes,
    topic_info,
    wire,
)

from zoolog.broker.broker import Broker
from zoolog.broker.fetch import FetchOperation
from zoolog.broker.fetch_sessions import FetchContext, FetchPartitionSpec, FetchSessionCache
from zoolog.protocol.kafka._generated.fetch import FetchRequest, FetchResponse
from zoolog.protocol.kafka.errors import Err

ID_A = b"A" * 16
ID_B = b"B" * 16


def spec(topic: str, partition: int, offset: int = 0, *, topic_id: bytes = ID_A,
         max_bytes: int = 1 << 20) -> FetchPartitionSpec:
    return FetchPartitionSpec(topic, topic_id, partition, offset, max_bytes)


def keys(context: FetchContext, by_id: bool = False) -> list[tuple[object, int]]:
    return [((s.topic_id if by_id else s.topic), s.partition) for s in context.partitions]


def shown(context: FetchContext, s: FetchPartitionSpec, *, records: bool = False,
          error: int = Err.NONE, hw: int = 0, lso: int = 0, log_start: int = 0) -> bool:
    return context.include(s, error, records, hw, lso, log_start)


# --- the cache on its own ------------------------------------------------------------------


def test_a_full_fetch_without_a_session() -> None:
    cache = FetchSessionCache()
    context = cache.resolve(0, -1, [spec("a", 0), spec("a", 1)], [], False, 0)
    assert (context.session_id, context.incremental, context.error_code) == (0, False, 0)
    assert keys(context) == [("a", 0), ("a", 1)]
    assert len(cache) == 0
    # a full fetch lists every partition, changed or not
    assert all(shown(context, s) for s in context.partitions)
    assert all(shown(context, s) for s in context.partitions)


def test_epoch_0_opens_a_session_and_incremental_fetches_follow() -> None:
    cache = FetchSessionCache()
    opened = cache.resolve(0, 0, [spec("a", 0, 5), spec("a", 1, 7)], [], False, 0)
    assert opened.session_id > 0 and not opened.incremental
    assert len(cache) == 1
    sid = opened.session_id
    for s in opened.partitions:
        assert shown(opened, s, hw=10)  # the full response, remembered by the session
    # epoch 1: no partition named -> the session's partitions, at their offsets
    context = cache.resolve(sid, 1, [], [], False, 10)
    assert context.incremental and context.session_id == sid
    assert [(s.topic, s.partition, s.fetch_offset) for s in context.partitions] == [
        ("a", 0, 5), ("a", 1, 7)]
    # unchanged partitions are left out, a changed high watermark or records put them in
    a0, a1 = context.partitions
    assert not shown(context, a0, hw=10)
    assert shown(context, a1, hw=11)
    assert not shown(context, a1, hw=11)
    assert shown(context, a0, hw=10, records=True)
    assert shown(context, a0, hw=10, error=Err.OFFSET_OUT_OF_RANGE)
    assert shown(context, a0, hw=10, lso=3) and shown(context, a0, hw=10, lso=3, log_start=2)


def test_incremental_requests_add_change_and_forget_partitions() -> None:
    cache = FetchSessionCache()
    sid = cache.resolve(0, 0, [spec("a", 0, 1), spec("a", 1, 1)], [], False, 0).session_id
    # epoch 1: a-0 moves on, b-0 is added, a-1 is forgotten
    context = cache.resolve(sid, 1, [spec("a", 0, 40, max_bytes=99), spec("b", 0, 3)],
                            [("a", 1)], False, 1)
    assert [(s.topic, s.partition, s.fetch_offset, s.partition_max_bytes)
            for s in context.partitions] == [("a", 0, 40, 99), ("b", 0, 3, 1 << 20)]
    new = context.partitions[1]
    assert shown(context, new), "a partition new to the session is always listed"
    # the session keeps the changes
    context = cache.resolve(sid, 2, [], [], False, 2)
    assert keys(context) == [("a", 0), ("b", 0)]
    assert context.partitions[0].fetch_offset == 40


def test_sessions_by_topic_id_from_v13() -> None:
    cache = FetchSessionCache()
    sid = cache.resolve(0, 0, [spec("", 0, topic_id=ID_A), spec("", 1, topic_id=ID_B)], [],
                        True, 0).session_id
    context = cache.resolve(sid, 1, [spec("", 0, 9, topic_id=ID_B)], [(ID_A, 0)], True, 1)
    assert keys(context, by_id=True) == [(ID_B, 1), (ID_B, 0)]
    # a session opened by id and used by a request that names topics: Kafka's error for it
    assert (cache.resolve(sid, 2, [], [], False, 2).error_code
            == Err.FETCH_SESSION_TOPIC_ID_ERROR)


def test_an_unknown_session_is_fetch_session_id_not_found() -> None:
    cache = FetchSessionCache()
    for sid in (0, 1, 12345):
        context = cache.resolve(sid, 1, [spec("a", 0)], [], False, 0)
        assert context.error_code == Err.FETCH_SESSION_ID_NOT_FOUND
        assert context.partitions == [] and context.session_id == 0


def test_a_wrong_epoch_is_invalid_fetch_session_epoch_and_keeps_the_session() -> None:
    cache = FetchSessionCache()
    sid = cache.resolve(0, 0, [spec("a", 0)], [], False, 0).session_id
    for wrong in (2, 7):
        context = cache.resolve(sid, wrong, [], [], False, 0)
        assert context.error_code == Err.INVALID_FETCH_SESSION_EPOCH
        assert context.partitions == []
    assert cache.resolve(sid, 1, [], [], False, 0).error_code == Err.NONE
    # a replayed epoch is wrong too (the session moved on to 2)
    assert cache.resolve(sid, 1, [], [], False, 0).error_code == \
        Err.INVALID_FETCH_SESSION_EPOCH
    assert cache.resolve(sid, 2, [], [], False, 0).error_code == Err.NONE


def test_epoch_minus_1_closes_the_session_and_is_a_full_fetch() -> None:
    cache = FetchSessionCache()
    sid = cache.resolve(0, 0, [spec("a", 0)], [], False, 0).session_id
    context = cache.resolve(sid, -1, [spec("b", 0)], [], False, 0)
    assert (context.session_id, context.incremental, keys(context)) == (0, False, [("b", 0)])
    assert len(cache) == 0
    assert cache.resolve(sid, 1, [], [], False, 0).error_code == Err.FETCH_SESSION_ID_NOT_FOUND


def test_epoch_0_with_an_old_session_id_closes_it_and_opens_another() -> None:
    cache = FetchSessionCache()
    old = cache.resolve(0, 0, [spec("a", 0)], [], False, 0).session_id
    new = cache.resolve(old, 0, [spec("b", 0)], [], False, 0).session_id
    assert new != old and len(cache) == 1
    assert cache.resolve(old, 1, [], [], False, 0).error_code == Err.FETCH_SESSION_ID_NOT_FOUND
    assert keys(cache.resolve(new, 1, [], [], False, 0)) == [("b", 0)]


def test_sessions_beyond_the_limit_evict_the_least_recently_used() -> None:
    cache = FetchSessionCache(sessions_max=2)
    first = cache.resolve(0, 0, [spec("a", 0)], [], False, 0).session_id
    second = cache.resolve(0, 0, [spec("b", 0)], [], False, 1).session_id
    assert cache.resolve(first, 1, [], [], False, 2).error_code == Err.NONE  # first is fresh
    third = cache.resolve(0, 0, [spec("c", 0)], [], False, 3).session_id
    assert len(cache) == 2
    assert cache.resolve(second, 1, [], [], False, 4).error_code == \
        Err.FETCH_SESSION_ID_NOT_FOUND
    assert cache.resolve(first, 2, [], [], False, 4).error_code == Err.NONE
    assert cache.resolve(third, 1, [], [], False, 4).error_code == Err.NONE
    assert len({first, second, third}) == 3


def test_idle_sessions_expire_and_deleted_topics_leave_sessions() -> None:
    cache = FetchSessionCache()
    sid = cache.resolve(0, 0, [spec("a", 0), spec("b", 0, topic_id=ID_B)], [], False, 0)\
        .session_id
    cache.drop_topic("a", ID_A)
    assert keys(cache.resolve(sid, 1, [], [], False, 100)) == [("b", 0)]
    assert cache.expire(150, 100) == 0
    assert cache.expire(200, 100) == 1
    assert len(cache) == 0


@given(st.lists(st.tuples(st.sampled_from(["open", "use", "close"]), st.integers(0, 4)),
                max_size=40), st.integers(1, 4))
@settings(max_examples=200, deadline=None)
def test_the_cache_is_an_lru_of_at_most_sessions_max(steps: list[tuple[str, int]],
                                                     sessions_max: int) -> None:
    cache = FetchSessionCache(sessions_max)
    model: dict[int, int] = {}  # session id -> next epoch, in LRU order (oldest first)
    opened: list[int] = []
    for now, (op, pick) in enumerate(steps):
        if op == "open":
            sid = cache.resolve(0, 0, [spec("a", pick)], [], False, now).session_id
            assert sid not in model
            if len(model) >= sessions_max:
                del model[next(iter(model))]
            model[sid] = 1
            opened.append(sid)
        elif opened:
            sid = opened[pick % len(opened)]
            if op == "use":
                context = cache.resolve(sid, model.get(sid, 1), [], [], False, now)
                if sid in model:
                    assert context.error_code == Err.NONE
                    model[sid] = model.pop(sid) + 1
                else:
                    assert context.error_code == Err.FETCH_SESSION_ID_NOT_FOUND
            else:
                cache.resolve(sid, -1, [], [], False, now)
                model.pop(sid, None)
        assert len(cache) == len(model) <= sessions_max


# --- through FetchOperation on a Broker ---------------------------------------------------------


def fetch_request(topics: dict[str, list[tuple[int, int]]], *, session_id: int = 0,
                  session_epoch: int = -1, forgotten: dict[str, list[int]] | None = None,
                  broker: Broker | None = None, by_id: bool = False) -> FetchRequest:
    def topic_id(name: str) -> bytes:
        assert broker is not None
        return broker.metadata.topics[name].topic_id

    return FetchRequest(
        max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, session_id=session_id,
        session_epoch=session_epoch,
        topics=[FetchRequest.FetchTopic(
            topic="" if by_id else name, topic_id=topic_id(name) if by_id else bytes(16),
            partitions=[FetchRequest.FetchPartition(partition=p, fetch_offset=o,
                                                    partition_max_bytes=1 << 20)
                        for p, o in parts])
            for name, parts in topics.items()],
        forgotten_topics_data=[FetchRequest.ForgottenTopic(
            topic="" if by_id else name, topic_id=topic_id(name) if by_id else bytes(16),
            partitions=parts) for name, parts in (forgotten or {}).items()])


def serve(broker: Broker, request: FetchRequest, version: int,
          now_ms: int = START_MS) -> FetchResponse:
    operation = FetchOperation(broker, wire(request, version), version, now_ms)
    response = operation.evaluate(now_ms)
    assert response is not None
    return response


def listed(response: FetchResponse) -> dict[tuple[str, int], FetchResponse.PartitionData]:
    return {(t.topic, p.partition_index): p for t in response.responses for p in t.partitions}


def test_an_incremental_fetch_lists_only_the_partition_that_got_data() -> None:
    broker = new_broker(topic_info("a", partitions=2), topic_info("b"))
    for topic, index in (("a", 0), ("a", 1), ("b", 0)):
        append(broker, topic, client_batch(2), partition=index)
    full = serve(broker, fetch_request({"a": [(0, 2), (1, 2)], "b": [(0, 2)]},
                                       session_epoch=0), 12)
    assert full.error_code == 0 and full.session_id > 0
    assert set(listed(full)) == {("a", 0), ("a", 1), ("b", 0)}
    sid = full.session_id
    # nothing changed: an empty incremental response
    empty = serve(broker, fetch_request({}, session_id=sid, session_epoch=1), 12)
    assert empty.session_id == sid and listed(empty) == {}
    # a-1 gets data: only a-1 is listed, with its records and new high watermark
    raw = client_batch(3)
    append(broker, "a", raw, partition=1)
    delta = serve(broker, fetch_request({}, session_id=sid, session_epoch=2), 12)
    assert set(listed(delta)) == {("a", 1)}
    a1 = listed(delta)[("a", 1)]
    assert a1.high_watermark == 5 and a1.error_code == 0
    assert slice_bytes(broker, a1.records)[16:] == raw[16:]
    # the consumer moves a-1 on; its high watermark was already sent: nothing to list
    moved = serve(broker, fetch_request({"a": [(1, 5)]}, session_id=sid, session_epoch=3), 12)
    assert listed(moved) == {}
    # a partition whose log start moves is listed (DeleteRecords)
    broker.partition("b", 0).log.delete_records_before(1)
    start = serve(broker, fetch_request({}, session_id=sid, session_epoch=4), 12)
    assert set(listed(start)) == {("b", 0)}
    assert listed(start)[("b", 0)].log_start_offset == 1


def test_incremental_fetch_errors_are_listed_until_they_clear() -> None:
    broker = new_broker(topic_info("a"))
    append(broker, "a", client_batch(2))
    sid = serve(broker, fetch_request({"a": [(0, 2)]}, session_epoch=0), 12).session_id
    bad = serve(broker, fetch_request({"a": [(0, 9)]}, session_id=sid, session_epoch=1), 12)
    assert listed(bad)[("a", 0)].error_code == Err.OFFSET_OUT_OF_RANGE
    again = serve(broker, fetch_request({}, session_id=sid, session_epoch=2), 12)
    assert listed(again)[("a", 0)].error_code == Err.OFFSET_OUT_OF_RANGE
    fixed = serve(broker, fetch_request({"a": [(0, 2)]}, session_id=sid, session_epoch=3), 12)
    assert listed(fixed)[("a", 0)].error_code == 0  # listed once more, without the error
    assert listed(serve(broker, fetch_request({}, session_id=sid, session_epoch=4), 12)) == {}


def test_forgotten_partitions_leave_the_session_through_the_broker() -> None:
    broker = new_broker(topic_info("a", partitions=2))
    sid = serve(broker, fetch_request({"a": [(0, 0), (1, 0)]}, session_epoch=0), 12)\
        .session_id
    request = fetch_request({}, session_id=sid, session_epoch=1, forgotten={"a": [0]})
    operation = FetchOperation(broker, wire(request, 12), 12, START_MS)
    assert operation.partition_keys == [("a", 1)]
    append(broker, "a", client_batch(1), partition=0)
    append(broker, "a", client_batch(1), partition=1)
    response = operation.evaluate(START_MS)
    assert response is not None and set(listed(response)) == {("a", 1)}


def test_session_errors_are_top_level() -> None:
    broker = new_broker(topic_info("a"))
    for request, code in [
        (fetch_request({"a": [(0, 0)]}, session_id=77, session_epoch=1),
         Err.FETCH_SESSION_ID_NOT_FOUND),
    ]:
        response = serve(broker, request, 12)
        assert (response.error_code, response.session_id, response.responses) == (code, 0, [])
    sid = serve(broker, fetch_request({"a": [(0, 0)]}, session_epoch=0), 12).session_id
    response = serve(broker, fetch_request({}, session_id=sid, session_epoch=5), 12)
    assert response.error_code == Err.INVALID_FETCH_SESSION_EPOCH and response.responses == []
    response.to_bytes(12)


def test_sessions_by_topic_id_through_the_broker() -> None:
    broker = new_broker(topic_info("a", partitions=2))
    full = serve(broker, fetch_request({"a": [(0, 0), (1, 0)]}, session_epoch=0,
                                       broker=broker, by_id=True), 13)
    sid = full.session_id
    assert {t.topic_id for t in full.responses} == {broker.metadata.topics["a"].topic_id}
    append(broker, "a", client_batch(1), partition=0)
    delta = serve(broker, fetch_request({}, session_id=sid, session_epoch=1), 13)
    assert [(t.topic_id, [p.partition_index for p in t.partitions]) for t in delta.responses] \
        == [(broker.metadata.topics["a"].topic_id, [0])]


def test_fetch_below_v7_has_no_session() -> None:
    broker = new_broker(topic_info("a"))
    response = serve(broker, fetch_request({"a": [(0, 0)]}, session_epoch=0), 6)
    assert response.session_id == 0 and len(broker.fetch_sessions) == 0
    assert set(listed(response)) == {("a", 0)}
