"""`zoolog` command: `zoolog up` runs a node; `zoolog zk ...` speaks zkCli's verbs.

Subcommands register themselves in `COMMANDS`; each module owns its argument parser and its
handler, this module only dispatches.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from zoolog import __version__
from zoolog.cli import broker, group, raft, sim, topic, up, zk

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {
    "up": (up.add_arguments, up.run),
    "broker": (broker.add_arguments, broker.run),
    "zk": (zk.add_arguments, zk.run),
    "sim": (sim.add_arguments, sim.run),
    "raft": (raft.add_arguments, raft.run),
    "topic": (topic.add_arguments, topic.run),
    "group": (group.add_arguments, group.run),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoolog",
        description="ZooKeeper and Kafka rebuilt in pure Python, speaking their wire protocols.",
    )
    parser.add_argument("--version", action="version", version=f"zoolog {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, _) in COMMANDS.items():
        module = sys.modules[COMMANDS[name][1].__module__]
        sub = subparsers.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0],
                                    description=module.__doc__)
        add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return COMMANDS[args.command][1](args)
