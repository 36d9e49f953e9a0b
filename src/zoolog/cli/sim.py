"""Run the consensus simulator: `zoolog sim --seed N` replays one seed, `--seeds A..B` a range.

Each seed is a deterministic fault schedule (drops, duplicates, delays, partitions, crashes,
clock skew) followed by a liveness phase; a safety violation prints the seed and exits 1.
"""

from __future__ import annotations

import argparse
import sys
import time

from zoolog.testing.sim import HARSH, Faults, SimulationFailure, run_seed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--seed", type=int, help="replay one seed")
    which.add_argument("--seeds", default="0..99", help="a range A..B (inclusive)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3000, help="fault-phase steps (1 ms each)")
    parser.add_argument("--harsh", action="store_true", help="frequent crashes and partitions")


def _seeds(args: argparse.Namespace) -> range:
    if args.seed is not None:
        return range(args.seed, args.seed + 1)
    low, _, high = args.seeds.partition("..")
    return range(int(low), int(high or low) + 1)


def run(args: argparse.Namespace) -> int:
    faults: Faults | None = HARSH if args.harsh else None
    started = time.monotonic()
    totals: dict[str, int] = {}
    seeds = _seeds(args)
    for seed in seeds:
        try:
            stats = run_seed(seed, nodes=args.nodes, steps=args.steps, faults=faults)
        except SimulationFailure as failure:
            print(f"FAIL {failure}", file=sys.stderr)
            return 1
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + value
    elapsed = time.monotonic() - started
    summary = ", ".join(f"{k} {v}" for k, v in sorted(totals.items()))
    print(f"{len(seeds)} seeds, {args.nodes} nodes, {args.steps} steps: no violations "
          f"({summary}) in {elapsed:.1f} s")
    return 0
