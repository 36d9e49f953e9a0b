"""Apache's zkCli.sh against zoolog, and zoolog's own `zoolog zk` CLI (python -m zoolog zk)."""

from __future__ import annotations

import difflib

from tests.cli.zkcli import (
    ALICE,
    SESSION,
    SESSION_EVENTS,
    SESSION_OUTPUT,
    normalise,
    run_zkcli,
    run_zoolog_cli,
    session,
    split_transcript,
)
from zoolog.testing import ZkServerThread

ROOT = "/cli"


def test_zkcli_session_against_zoolog(zoolog_node: ZkServerThread) -> None:
    transcript = run_zkcli(zoolog_node.connect_string, session(ROOT, SESSION))
    assert normalise(transcript.lines) == session(ROOT, SESSION_OUTPUT)
    assert transcript.events == sorted(session(ROOT, SESSION_EVENTS))
    # a second session: the first one's ephemerals went with it; TTL and container nodes stay
    after = run_zkcli(zoolog_node.connect_string, [f"ls {ROOT}", f"stat {ROOT}/eph"])
    assert after.lines == [
        "[cont, last, mine, open, secure, seq-0000000002, ttl]",
        f"Node does not exist: {ROOT}/eph",
    ]


def test_zkcli_single_command_mode(zoolog_node: ZkServerThread) -> None:
    cs = zoolog_node.connect_string
    created = run_zkcli(cs, args=["create", "/one", "payload"])
    assert (created.lines, created.returncode) == (["Created /one"], 0)
    got = run_zkcli(cs, args=["get", "/one"])
    assert (got.lines, got.returncode) == (["payload"], 0)
    missing = run_zkcli(cs, args=["get", "/two"])
    assert missing.lines == ["Node does not exist: /two"]
    assert missing.returncode != 0


def test_zoolog_cli_transcript_matches_zkcli(zoolog_node: ZkServerThread) -> None:
    """The same session through `zoolog zk` (stdin mode) prints what zkCli prints (stdout and
    stderr merged in call order; zoolog's CLI sets no watches, so events are not compared)."""
    done = run_zoolog_cli(zoolog_node.connect_string, commands=session("/pcli", SESSION),
                          merged=True)
    transcript = split_transcript(done.stdout, done.returncode)
    expected, actual = session("/pcli", SESSION_OUTPUT), normalise(transcript.lines)
    assert actual == expected, "\n".join(
        difflib.unified_diff(expected, actual, "zkCli", "zoolog zk", n=0, lineterm=""))


def test_zoolog_cli_single_verbs(zoolog_node: ZkServerThread) -> None:
    cs = zoolog_node.connect_string

    def zk(*args: str) -> tuple[str, str, int]:
        done = run_zoolog_cli(cs, list(args))
        return done.stdout, done.stderr, done.returncode

    assert zk("create", "/v", "one") == ("Created /v\n", "", 0)
    assert zk("create", "/v", "again") == ("", "Node already exists: /v\n", 1)
    assert zk("create", "-s", "/v/s-", "x") == ("Created /v/s-0000000000\n", "", 0)
    assert zk("create", "-e", "/v/e") == ("Created /v/e\n", "", 0)
    # the ephemeral went with that one-command session
    assert zk("ls", "/v") == ("[s-0000000000]\n", "", 0)
    assert zk("create", "-t", "60000", "/v/ttl", "t") == ("Created /v/ttl\n", "", 0)
    assert zk("create", "-c", "/v/cont") == ("Created /v/cont\n", "", 0)
    assert zk("get", "/v") == ("one\n", "", 0)
    out, err, rc = zk("get", "-s", "/v")
    lines = out.splitlines()
    assert (lines[0], lines[6:], err, rc) == ("one", [
        "cversion = 5", "dataVersion = 0", "aclVersion = 0", "ephemeralOwner = 0x0",
        "dataLength = 3", "numChildren = 3"], "", 0)
    assert zk("set", "/v", "two") == ("", "", 0)
    assert zk("set", "-v", "0", "/v", "three") == ("", "version No is not valid : /v\n", 1)
    assert zk("set", "-v", "1", "/v", "three") == ("", "", 0)
    # `stat PATH` is zkCli's stat verb, not the four-letter word `stat`
    out, _, rc = zk("stat", "/v")
    assert ("dataVersion = 2" in out.splitlines(), rc) == (True, 0), out
    out, _, _ = zk("stat", "/v/ttl")
    assert "ephemeralOwner = 0x0" in out.splitlines(), out
    assert zk("stat", "/nope") == ("", "Node does not exist: /nope\n", 1)
    assert zk("ls", "-s", "/v")[0].splitlines()[0] == "[cont, s-0000000000, ttl]"
    assert zk("ls", "-R", "/v") == (
        "/v\n/v/cont\n/v/s-0000000000\n/v/ttl\n", "", 0)
    assert zk("delete", "/v") == ("", "Node not empty: /v\n", 1)
    assert zk("delete", "-v", "3", "/v/ttl") == ("", "version No is not valid : /v/ttl\n", 1)
    assert zk("delete", "/v/ttl") == ("", "", 0)
    assert zk("setAcl", "/v/cont", "world:anyone:r")[2] == 0
    assert zk("create", "/v/cont/x") == ("", "Insufficient permission : /v/cont/x\n", 1)
    assert zk("create", "/v/sec", "s", f"digest:{ALICE}:cdrwa")[2] == 0
    assert zk("get", "/v/sec") == ("", "Insufficient permission : /v/sec\n", 1)
    assert zk("delete", "/v/sec") == ("", "", 0)  # DELETE is checked on the parent
    assert zk("deleteall", "/v") == ("", "", 0)
    assert zk("ls", "/") == ("[zookeeper]\n", "", 0)
    assert zk("frobnicate", "/")[2] == 2


def test_zoolog_cli_authenticated_session_on_stdin(zoolog_node: ZkServerThread) -> None:
    done = run_zoolog_cli(zoolog_node.connect_string, commands=[
        f"create /s s digest:{ALICE}:cdrwa",
        "get /s",
        "addauth digest alice:secret",
        "get /s",
        "set /s t",
        "get /s",
        "sync /s",
    ])
    assert done.stderr == "Insufficient permission : /s\n"
    assert done.returncode == 1
    assert done.stdout.splitlines()[:3] == ["Created /s", "s", "t"]


def test_zoolog_cli_four_letter_words(zoolog_node: ZkServerThread) -> None:
    cs = zoolog_node.connect_string
    ruok = run_zoolog_cli(cs, ["ruok"])
    assert (ruok.stdout, ruok.stderr, ruok.returncode) == ("imok", "", 0)
    srvr = run_zoolog_cli(cs, ["srvr"]).stdout.splitlines()
    assert srvr[0].startswith("Zookeeper version: 3.8.")
    assert "Mode: standalone" in srvr
    assert any(line.startswith("Zxid: 0x") for line in srvr)
    assert "zk_server_state\tstandalone" in run_zoolog_cli(cs, ["mntr"]).stdout.splitlines()
    assert run_zoolog_cli(cs, ["isro"]).stdout == "rw"
    assert run_zoolog_cli(cs, ["envi"]).stdout.startswith("Environment:\n")
