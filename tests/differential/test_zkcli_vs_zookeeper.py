"""Apache's zkCli.sh, one scripted session, against ZooKeeper 3.8 and against zoolog: the
transcripts must be the same modulo times, zxids and session ids."""

from __future__ import annotations

import uuid

from tests.cli.zkcli import SESSION, SESSION_EVENTS, SESSION_OUTPUT, normalise, run_zkcli, session
from tests.differential.harness import Server


def test_zkcli_session_is_the_same_on_both(servers: tuple[Server, Server]) -> None:
    root = f"/zkcli-{uuid.uuid4().hex[:8]}"
    zk, zl = (run_zkcli(server.connect_string, session(root, SESSION)) for server in servers)
    assert normalise(zl.lines) == normalise(zk.lines)
    assert zl.events == zk.events
    # and ZooKeeper prints what tests/cli expects of zkCli against zoolog
    assert normalise(zk.lines) == session(root, SESSION_OUTPUT)
    assert zk.events == sorted(session(root, SESSION_EVENTS))
    # clean up what the session left (its TTL node would otherwise expire later)
    left = ["addauth digest alice:secret", f"deleteall {root}"]
    for server in servers:
        assert run_zkcli(server.connect_string, left).lines == []
