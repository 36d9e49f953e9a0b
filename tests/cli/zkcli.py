"""Running Apache's zkCli.sh (Debian `zookeeper` package) and zoolog's own `zoolog zk` CLI, and
normalising their transcripts.

zkCli.sh reads commands from stdin, one per line, when it has no command arguments (JLine is not
on the Debian classpath, so it uses a plain line reader): one JVM start for a whole session. With
`-server H:P VERB ARGS` it runs one command and exits. It prints command results on stdout and
"Created ..."/error messages on stderr; both are merged here (Java flushes each println, so the
merged order is the order of the calls). Watch notifications are printed by the event thread at
any point, so transcripts keep them apart as a sorted list.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")
TIMEOUT_S = 60

_TIME = re.compile(r"\w{3} \w{3} \d{2} \d{2}:\d{2}:\d{2} \w+ \d{4}")
_NOISE = ("SLF4J:", "Connecting to ", "Welcome to ZooKeeper!", "JLine support is ")


@dataclass
class Transcript:
    lines: list[str]
    """Output lines in order, without blank lines, banners and watch notifications."""
    events: list[str]
    """`WatchedEvent ...` lines, sorted (the event thread prints them at any time)."""
    returncode: int


def split_transcript(text: str, returncode: int) -> Transcript:
    lines, events = [], []
    for line in text.splitlines():
        if not line.strip() or line.startswith(_NOISE) or line == "WATCHER::":
            continue
        if line.startswith("WatchedEvent "):
            events.append(line)
        else:
            lines.append(line)
    return Transcript(lines, sorted(events), returncode)


def require_zkcli() -> None:
    if not ZKCLI.exists():
        pytest.fail(f"{ZKCLI} is missing: install the Debian 'zookeeper' package "
                    "(CI installs it)", pytrace=False)


def run_zkcli(connect_string: str, commands: list[str] | None = None,
              args: list[str] | None = None) -> Transcript:
    """One zkCli.sh run: `commands` on stdin (then quit), or `args` as a single command."""
    require_zkcli()
    stdin = "".join(f"{c}\n" for c in [*(commands or []), "quit"]) if commands else ""
    env = dict(os.environ, ZOO_LOG_DIR="/tmp", CLIENT_JVMFLAGS="-XX:TieredStopAtLevel=1")
    done = subprocess.run(
        ["bash", str(ZKCLI), "-server", connect_string, *(args or [])],
        input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=TIMEOUT_S, env=env, check=False,
    )
    return split_transcript(done.stdout, done.returncode)


def run_zoolog_cli(connect_string: str, args: list[str] | None = None,
                   commands: list[str] | None = None,
                   merged: bool = False) -> subprocess.CompletedProcess[str]:
    """`python -m zoolog zk -server H:P [ARGS]` with `commands` on stdin; stdout and stderr
    apart, or `merged` into stdout in call order (unbuffered)."""
    stdin = "".join(f"{c}\n" for c in commands) if commands is not None else ""
    return subprocess.run(
        [sys.executable, "-m", "zoolog", "zk", "-server", connect_string, *(args or [])],
        input=stdin, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
        text=True, timeout=TIMEOUT_S, check=False,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def normalise(lines: list[str]) -> list[str]:
    """Blank out what differs between runs and servers: times, zxids, session ids."""
    out = []
    for line in lines:
        line = _TIME.sub("<time>", line)
        line = re.sub(r"^(cZxid|mZxid|pZxid) = 0x[0-9a-f]+$", r"\1 = <zxid>", line)
        line = re.sub(r"^ephemeralOwner = 0x[0-9a-f]*[1-9a-f][0-9a-f]*$",
                      "ephemeralOwner = <session>", line)
        out.append(line)
    return out


ALICE = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="

SESSION = [
    "create {R}",
    "create {R}/a hello",
    "create {R}/a again",
    "create -e {R}/eph e",
    "create -s {R}/seq- s",
    "create -e -s {R}/eseq- x",
    "ls {R}",
    "ls -s {R}",
    "get -s {R}/a",
    "set {R}/a world",
    "set -v 1 {R}/a again",
    "set -v 1 {R}/a stale",
    "stat {R}/a",
    "get {R}/missing",
    "stat {R}/eph",
    "delete -v 5 {R}/a",
    "delete {R}/a",
    "create {R}/d",
    "create {R}/d/x",
    "delete {R}/d",
    "deleteall {R}/d",
    "ls -R {R}",
    "getAcl {R}",
    "addauth digest alice:secret",
    f"create {{R}}/secure s digest:{ALICE}:cdrwa",
    "getAcl {R}/secure",
    "create {R}/mine m auth::cdrwa",
    "getAcl {R}/mine",
    "create {R}/open o world:anyone:r",
    "setAcl {R}/open world:anyone:cdrwa",
    "getAcl {R}/open",
    f"setAcl -v 0 {{R}}/secure digest:{ALICE}:cdrwa,world:anyone:r",
    "setAcl -v 0 {R}/secure world:anyone:r",
    "getAcl {R}/secure",
    "sync {R}",
    "create -t 100000 {R}/ttl t",
    "create -c {R}/cont",
    "stat {R}/ttl",
    "stat {R}/cont",
    "create {R}/eph/child",
    "get -w {R}/seq-0000000002",
    "ls -w {R}",
    "set {R}/seq-0000000002 changed",
    "create {R}/last",
]
"""One zkCli session exercising every verb; {R} is the session's root path."""


def _stat(cversion: int = 0, version: int = 0, aversion: int = 0, owner: str = "0x0",
          length: int = 0, children: int = 0) -> list[str]:
    return ["cZxid = <zxid>", "ctime = <time>", "mZxid = <zxid>", "mtime = <time>",
            "pZxid = <zxid>", f"cversion = {cversion}", f"dataVersion = {version}",
            f"aclVersion = {aversion}", f"ephemeralOwner = {owner}", f"dataLength = {length}",
            f"numChildren = {children}"]


SESSION_OUTPUT = [
    "Created {R}",
    "Created {R}/a",
    "Node already exists: {R}/a",
    "Created {R}/eph",
    "Created {R}/seq-0000000002",
    "Created {R}/eseq-0000000003",
    "[a, eph, eseq-0000000003, seq-0000000002]",
    "[a, eph, eseq-0000000003, seq-0000000002]",
    *_stat(cversion=4, children=4),
    "hello",
    *_stat(length=5),
    "version No is not valid : {R}/a",
    *_stat(version=2, length=5),
    "Node does not exist: {R}/missing",
    *_stat(owner="<session>", length=1),
    "version No is not valid : {R}/a",
    "Created {R}/d",
    "Created {R}/d/x",
    "Node not empty: {R}/d",
    "{R}",
    "{R}/eph",
    "{R}/eseq-0000000003",
    "{R}/seq-0000000002",
    "'world,'anyone",
    ": cdrwa",
    "Created {R}/secure",
    f"'digest,'{ALICE}",
    ": cdrwa",
    "Created {R}/mine",
    f"'digest,'{ALICE}",
    ": cdrwa",
    "Created {R}/open",
    "Insufficient permission : {R}/open",
    "'world,'anyone",
    ": r",
    "version No is not valid : {R}/secure",
    f"'digest,'{ALICE}",
    ": cdrwa",
    "'world,'anyone",
    ": r",
    "Sync is OK",
    "Created {R}/ttl",
    "Created {R}/cont",
    *_stat(length=1),
    *_stat(),
    "Ephemerals cannot have children: {R}/eph/child",
    "s",
    "[cont, eph, eseq-0000000003, mine, open, secure, seq-0000000002, ttl]",
    "Created {R}/last",
]
"""What zkCli prints for SESSION (normalised; watch notifications apart)."""

SESSION_EVENTS = sorted([
    "WatchedEvent state:SyncConnected type:None path:null",
    "WatchedEvent state:SyncConnected type:NodeDataChanged path:{R}/seq-0000000002",
    "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:{R}",
    "WatchedEvent state:Closed type:None path:null",
])


def session(root: str, template: list[str]) -> list[str]:
    return [line.replace("{R}", root) for line in template]
