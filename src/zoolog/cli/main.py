"""`zoolog` command: `zoolog up` runs zoolog; `zoolog zk|topic|group|txn ...` are the clients.

Subcommands are listed in `COMMANDS` by module; each module owns its argument parser
(`add_arguments`) and its handler (`run`), this module only dispatches. Only the module of
the command being run is imported, so that `zoolog up` (the coordination service's process)
does not load the broker's code, which runs in a process of its own.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from types import ModuleType

from zoolog import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("zoolog.cli.up", "start zoolog: coordination service and Kafka broker"),
    "broker": ("zoolog.cli.broker", "run one Kafka broker against a coordination service"),
    "zk": ("zoolog.cli.zk", "zkCli-style commands against a coordination service"),
    "topic": ("zoolog.cli.topic", "create, list, describe, alter, delete, produce, consume"),
    "group": ("zoolog.cli.group", "list, describe, seek, delete consumer groups"),
    "txn": ("zoolog.cli.txn", "list, describe, abort transactions; describe producers"),
    "sim": ("zoolog.cli.sim", "replay Raft simulator seeds"),
    "raft": ("zoolog.cli.raft", "one node of a replicated Raft log"),
}
"""command -> (module, one-line help)."""


def _module(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name][0])


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that subcommand's options are loaded (the others are
    listed by name and help)."""
    parser = argparse.ArgumentParser(
        prog="zoolog",
        description="ZooKeeper and Kafka rebuilt in pure Python, speaking their wire protocols.",
    )
    parser.add_argument("--version", action="version", version=f"zoolog {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (_, summary) in COMMANDS.items():
        if only is not None and name != only:
            subparsers.add_parser(name, help=summary)
            continue
        module = _module(name)
        sub = subparsers.add_parser(name, help=summary, description=module.__doc__,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    words = list(sys.argv[1:] if argv is None else argv)
    command = next((w for w in words if not w.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(words)
    run: int = _module(args.command).run(args)
    return run
