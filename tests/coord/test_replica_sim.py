"""The coordination service on the Raft core, in the seeded simulator (`testing/coord_sim.py`):
hundreds of seeds of clients, sessions, partitions and crashes with no violation, and broken
replicas caught, to show the checks can fail."""

from __future__ import annotations

from typing import Any

import pytest

from zoolog.coord.replica import CoordReplica
from zoolog.coord.service import Pending
from zoolog.coord.txn import Txn
from zoolog.testing.coord_sim import CoordSimulation, run_coord_seed
from zoolog.testing.sim import HARSH, SimulationFailure

SEEDS = 60
STEPS = 2000


@pytest.mark.parametrize("servers", [3, 5])
def test_many_seeds_keep_every_check(servers: int) -> None:
    totals: dict[str, int] = {}
    for seed in range(SEEDS):
        faults = HARSH if seed % 4 == 0 else None
        stats = run_coord_seed(seed, servers=servers, steps=STEPS, faults=faults)
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + value
    # the seeds did exercise what the checks look at
    assert totals["acked_writes"] > 50 * SEEDS
    assert totals["syncs"] > 10 * SEEDS
    assert totals["crashes"] > SEEDS
    assert totals["elections"] > 2 * SEEDS
    assert totals["reconnects"] > SEEDS
    assert totals["expired"] > 0


class SyncWithoutQuorum(CoordReplica):
    """Answers `sync` from local state, as ZooKeeper's sync can (ZOOKEEPER-1675)."""

    def _route_syncs(self) -> None:
        syncs, self.service.syncs = self.service.syncs, []
        for conn_id, pending in syncs:
            self.service.complete_sync(conn_id, pending, pending.started_ms)


class ApplyWithLocalClock(CoordReplica):
    """Applies txns with each server's own clock instead of the time the leader stamped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        committed = self.service.committed

        def with_local_time(txn: Txn, conn_id: int | None, pending: Pending | None,
                            now_ms: int) -> None:
            txn.time_ms = now_ms
            committed(txn, conn_id, pending, now_ms)

        self.service.committed = with_local_time  # type: ignore[method-assign]


@pytest.mark.parametrize("broken", [SyncWithoutQuorum, ApplyWithLocalClock])
def test_broken_replicas_are_caught(broken: type[CoordReplica]) -> None:
    for seed in range(60):
        try:
            CoordSimulation(seed, 3, faults=HARSH, replica_class=broken).run(STEPS)
        except SimulationFailure as failure:
            assert "zoolog sim" in str(failure)
            return
    pytest.fail(f"{broken.__name__} survived 60 seeds")


def test_a_seed_replays_identically() -> None:
    assert run_coord_seed(7, steps=800) == run_coord_seed(7, steps=800)
