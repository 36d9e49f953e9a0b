"""kazoo's recipes, unchanged, against zoolog: the coordination patterns users build on."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable

from kazoo.recipe.barrier import Barrier, DoubleBarrier
from kazoo.recipe.cache import TreeCache, TreeEvent
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.recipe.lease import NonBlockingLease
from kazoo.recipe.lock import Lock, ReadLock, Semaphore, WriteLock
from kazoo.recipe.partitioner import SetPartitioner
from kazoo.recipe.party import Party, ShallowParty
from kazoo.recipe.queue import LockingQueue, Queue
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from zoolog.testing import wait_until


def test_lock_is_exclusive_and_passes_on_release(make_client) -> None:
    a, b = make_client(), make_client()
    lock_a, lock_b = Lock(a, "/locks/res", "a"), Lock(b, "/locks/res", "b")
    assert lock_a.acquire(timeout=5)
    assert not lock_b.acquire(blocking=False)
    got = threading.Event()

    def wait_for_lock() -> None:
        if lock_b.acquire(timeout=10):
            got.set()

    thread = threading.Thread(target=wait_for_lock)
    thread.start()
    wait_until(lambda: len(lock_a.contenders()) == 2)
    assert lock_a.contenders() == ["a", "b"]
    lock_a.release()
    assert got.wait(10)
    thread.join()
    lock_b.release()


def test_lock_is_released_when_its_holder_dies(make_client) -> None:
    holder, waiter = make_client(), make_client()
    assert Lock(holder, "/locks/perpetual").acquire(timeout=5)
    holder.stop()  # session closed: its ephemeral lock node goes
    assert Lock(waiter, "/locks/perpetual").acquire(timeout=10)


def test_read_write_locks(make_client) -> None:
    a, b, c = make_client(), make_client(), make_client()
    r1, r2 = ReadLock(a, "/rw"), ReadLock(b, "/rw")
    assert r1.acquire(timeout=5) and r2.acquire(timeout=5)
    w = WriteLock(c, "/rw")
    assert not w.acquire(blocking=False)
    r1.release()
    r2.release()
    assert w.acquire(timeout=5)
    w.release()


def test_semaphore_bounds_concurrency(make_client) -> None:
    clients = [make_client() for _ in range(3)]
    sems = [Semaphore(c, "/sem", max_leases=2) for c in clients]
    assert sems[0].acquire(timeout=5) and sems[1].acquire(timeout=5)
    assert not sems[2].acquire(blocking=False)
    sems[0].release()
    assert sems[2].acquire(timeout=5)
    assert len(sems[1].lease_holders()) == 2


def test_election_elects_one_leader_and_fails_over(make_client) -> None:
    a, b = make_client(), make_client()
    elected: list[str] = []
    release_a = threading.Event()

    def lead(name: str, hold: threading.Event | None) -> Callable[[], None]:
        def run() -> None:
            elected.append(name)
            if hold is not None:
                hold.wait(10)

        return run

    ea, eb = Election(a, "/election", "a"), Election(b, "/election", "b")
    ta = threading.Thread(target=ea.run, args=(lead("a", release_a),))
    ta.start()
    wait_until(lambda: elected == ["a"])
    tb = threading.Thread(target=eb.run, args=(lead("b", None),))
    tb.start()
    wait_until(lambda: len(ea.contenders()) == 2)
    assert ea.contenders()[0] == "a"
    release_a.set()  # leader a steps down
    wait_until(lambda: elected == ["a", "b"])
    ta.join(10)
    tb.join(10)


def test_non_blocking_lease(make_client) -> None:
    a, b = make_client(), make_client()
    duration = datetime.timedelta(seconds=30)
    assert NonBlockingLease(a, "/lease", duration, identifier="a")
    assert not NonBlockingLease(b, "/lease", duration, identifier="b")


def test_barrier_and_double_barrier(make_client) -> None:
    a, b = make_client(), make_client()
    barrier = Barrier(a, "/barrier")
    barrier.create()
    passed = threading.Event()
    thread = threading.Thread(target=lambda: Barrier(b, "/barrier").wait(10) and passed.set())
    thread.start()
    assert not passed.wait(0.2)
    barrier.remove()
    assert passed.wait(10)
    thread.join()

    entered = []
    db_b = DoubleBarrier(b, "/double", 2)
    thread = threading.Thread(target=lambda: (db_b.enter(), entered.append("b")))
    thread.start()
    db_a = DoubleBarrier(a, "/double", 2)
    db_a.enter()
    thread.join(10)
    assert entered == ["b"]
    left = threading.Thread(target=db_b.leave)
    left.start()
    db_a.leave()
    left.join(10)
    assert not left.is_alive()


def test_counter_is_compare_and_set(make_client) -> None:
    a, b = make_client(), make_client()
    ca, cb = Counter(a, "/counter"), Counter(b, "/counter")
    def bump(counter: Counter) -> None:
        for _ in range(25):
            counter += 1

    threads = [threading.Thread(target=bump, args=(c,)) for c in (ca, cb)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ca.value == 50


def test_queue_and_locking_queue(make_client) -> None:
    a, b = make_client(), make_client()
    q = Queue(a, "/queue")
    for item in (b"one", b"two", b"three"):
        q.put(item)
    q.put(b"urgent", priority=1)
    assert Queue(b, "/queue").get() == b"urgent"
    assert [q.get(), q.get(), q.get(), q.get()] == [b"one", b"two", b"three", None]

    lq_a, lq_b = LockingQueue(a, "/lqueue"), LockingQueue(b, "/lqueue")
    lq_a.put_all([b"job1", b"job2"])
    assert lq_a.get(timeout=5) == b"job1"
    assert lq_b.get(timeout=5) == b"job2"  # job1 is taken by a
    assert lq_a.consume()
    assert lq_b.release()
    assert lq_a.get(timeout=5) == b"job2"
    assert lq_a.consume()
    assert len(lq_a) == 0


def test_party_tracks_live_members(make_client) -> None:
    a, b = make_client(), make_client()
    pa, pb = Party(a, "/party", "server-a"), ShallowParty(b, "/shallow", "server-b")
    pa.join()
    pb.join()
    observer = make_client()
    assert list(Party(observer, "/party")) == ["server-a"]
    assert list(ShallowParty(observer, "/shallow")) == ["server-b"]
    a.stop()
    wait_until(lambda: len(Party(observer, "/party")) == 0)


def test_data_watch_and_children_watch(make_client) -> None:
    writer, watcher = make_client(), make_client()
    seen_data: list[bytes | None] = []
    DataWatch(watcher, "/config", func=lambda data, stat: seen_data.append(data))
    writer.create("/config", b"v1")
    # DataWatch re-reads the node after each event: a set racing that read would be seen
    # instead of v1, so each value is awaited before the next is written
    wait_until(lambda: seen_data[-1:] == [b"v1"])
    writer.set("/config", b"v2")
    wait_until(lambda: seen_data[-1:] == [b"v2"])
    assert seen_data == [None, b"v1", b"v2"]

    members: list[list[str]] = []
    writer.ensure_path("/members")
    ChildrenWatch(watcher, "/members", func=lambda children: members.append(sorted(children)))
    writer.create("/members/m1", ephemeral=True)
    writer.create("/members/m2", ephemeral=True)
    wait_until(lambda: members[-1:] == [["m1", "m2"]])


def test_tree_cache_mirrors_a_subtree(make_client) -> None:
    writer, reader = make_client(), make_client()
    writer.ensure_path("/svc/a")
    cache = TreeCache(reader, "/svc")
    events: list[int] = []
    cache.listen(lambda event: events.append(event.event_type))
    cache.start()
    wait_until(lambda: TreeEvent.INITIALIZED in events)
    writer.create("/svc/b", b"x")
    writer.set("/svc/a", b"y")
    wait_until(lambda: cache.get_data("/svc/b") is not None
             and cache.get_data("/svc/a").data == b"y")
    assert sorted(cache.get_children("/svc")) == ["a", "b"]
    cache.close()


def test_set_partitioner_splits_work(make_client) -> None:
    a, b = make_client(), make_client()
    set_ = ("p0", "p1", "p2", "p3")
    pa = SetPartitioner(a, "/partition", set_, identifier="a", time_boundary=0.2)
    pb = SetPartitioner(b, "/partition", set_, identifier="b", time_boundary=0.2)

    def settled() -> bool:
        for partitioner in (pa, pb):
            if partitioner.failed:
                raise AssertionError("partitioner failed")
            if partitioner.release:
                partitioner.release_set()
            elif partitioner.allocating:
                partitioner.wait_for_acquire(0.05)
        return bool(pa.acquired and pb.acquired)

    wait_until(settled, timeout_s=20)
    assert sorted(list(pa) + list(pb)) == list(set_)
    pa.finish()
    pb.finish()
