"""The seeded simulator: hundreds of fault schedules with zero safety violations, and proof
that its checkers catch a broken Raft within the same budget."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoolog.consensus.node import RaftNode
from zoolog.testing.sim import Simulation, SimulationFailure, run_seed

SEEDS = int(os.environ.get("ZOOLOG_SIM_SEEDS", "300"))
STEPS = int(os.environ.get("ZOOLOG_SIM_STEPS", "3000"))


@pytest.mark.parametrize("nodes", [3, 5])
def test_many_seeds_hold_every_safety_invariant(nodes: int) -> None:
    totals = {"acked": 0, "elections": 0, "crashes": 0, "snapshots": 0}
    for seed in range(SEEDS):
        stats = run_seed(seed, nodes=nodes, steps=STEPS)
        for key in totals:
            totals[key] += stats[key]
    # the schedules really exercised the interesting paths
    assert totals["acked"] > SEEDS * 50
    assert totals["elections"] > SEEDS
    assert totals["crashes"] > SEEDS
    assert totals["snapshots"] > SEEDS


class VotesForAnyLog(RaftNode):
    """Broken: grants votes without the §5.4.1 up-to-date check."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.log.is_up_to_date = lambda last_index, last_term: True  # type: ignore[method-assign]


class VotesTwicePerTerm(RaftNode):
    """Broken: forgets whom it voted for, so it can grant two candidates the same term."""

    def _handle_vote_request(self, m):  # type: ignore[no-untyped-def]
        self.vote = 0
        self.lead = 0
        super()._handle_vote_request(m)


@pytest.mark.parametrize("broken", [VotesForAnyLog, VotesTwicePerTerm])
def test_checkers_catch_a_broken_raft_within_the_budget(broken: type[RaftNode]) -> None:
    for seed in range(SEEDS):
        try:
            run_seed(seed, nodes=3, steps=STEPS, raft_class=broken)
        except SimulationFailure as failure:
            assert str(seed) in str(failure) and "zoolog sim --seed" in str(failure)
            return
    pytest.fail(f"{broken.__name__} survived {SEEDS} seeds")


ACTIONS = st.one_of(
    st.tuples(st.sampled_from(["crash", "restart", "isolate", "split", "heal"]),
              st.integers(0, 4)),
    st.tuples(st.just("run"), st.integers(1, 400)),
)


@settings(max_examples=60, deadline=None)
@given(schedule=st.lists(ACTIONS, max_size=30), seed=st.integers(0, 2**16),
       nodes=st.sampled_from([3, 5]))
def test_hypothesis_fault_schedules(schedule: list[tuple[str, int]], seed: int,
                                    nodes: int) -> None:
    """Hypothesis draws explicit fault schedules; a failure shrinks to a minimal one."""
    Simulation(seed, nodes).run_schedule(schedule)


def test_hypothesis_schedules_find_a_broken_raft() -> None:
    @settings(max_examples=200, deadline=None, database=None)
    @given(schedule=st.lists(ACTIONS, max_size=30), seed=st.integers(0, 2**16))
    def check(schedule: list[tuple[str, int]], seed: int) -> None:
        Simulation(seed, 3, raft_class=VotesForAnyLog).run_schedule(schedule)

    with pytest.raises(SimulationFailure):
        check()
