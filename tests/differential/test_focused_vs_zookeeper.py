"""Focused differential tests: the exactness traps of COMPAT-ZK.md §2 and §3.8-§3.17, each
scenario run on Apache ZooKeeper 3.8 and on zoolog with zoolog's asyncio ZkClient (or kazoo).

Each test first requires zoolog's observations to equal ZooKeeper's, then pins ZooKeeper's
(so a wrong expectation in this file shows up as a ZooKeeper mismatch, not a zoolog one).
Scenarios that leave server-side work pending (TTL and container expiry) wait for it to finish,
so later zxid arithmetic is not disturbed; connections a server drops are resumed and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import struct
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from kazoo.exceptions import BadVersionError, RolledBackError, RuntimeInconsistency

from tests.differential.harness import AsyncRunner, KazooFactory, Server
from zoolog.client.zk import Session, ZkClient
from zoolog.coord.errors import ZkError
from zoolog.protocol.zk._generated.jute_records import (
    ACL,
    AddWatchRequest,
    CheckVersionRequest,
    CheckWatchesRequest,
    Create2Response,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ErrorResponse,
    GetAllChildrenNumberRequest,
    GetAllChildrenNumberResponse,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    GetEphemeralsRequest,
    GetEphemeralsResponse,
    Id,
    MultiHeader,
    RemoveWatchesRequest,
    SetDataRequest,
    SetWatches,
    Stat,
    WhoAmIResponse,
)
from zoolog.protocol.zk.opcodes import OpCode, Xid

OPEN = [ACL(31, Id("world", "anyone"))]
ALICE_HASH = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="
ALICE_ALL = [ACL(31, Id("digest", ALICE_HASH))]
_names = itertools.count()

Scenario = Callable[[Server], Coroutine[Any, Any, Any]]


def on_both(aio: AsyncRunner, servers: tuple[Server, Server], scenario: Scenario,
            timeout_s: float = 60.0) -> Any:
    """Run `scenario` on ZooKeeper then zoolog; require equal results; return ZooKeeper's."""
    zk = aio.run(scenario(servers[0]), timeout_s)
    zl = aio.run(scenario(servers[1]), timeout_s)
    assert zl == zk, (
        f"zoolog differs from ZooKeeper 3.8 in {scenario.__name__}:\n"
        f"  ZooKeeper 3.8: {zk!r}\n  zoolog:        {zl!r}"
    )
    return zk


def fresh_root(tag: str) -> str:
    return f"/{tag}-{next(_names)}-{uuid.uuid4().hex[:8]}"


async def outcome(awaitable: Awaitable[Any]) -> Any:
    """The result, or ("error", CODE_NAME) for a ZooKeeper error reply."""
    try:
        return await awaitable
    except ZkError as err:
        return ("error", err.code.name)


def brief(result: Any) -> Any:
    """An error outcome as is, any successful result as "ok"."""
    return result if isinstance(result, tuple) and result[:1] == ("error",) else "ok"


async def connection_closed(client: ZkClient, timeout_s: float = 5.0) -> bool:
    """Whether the server closes the client's connection within `timeout_s`."""
    return await client.wait_closed(timeout_s)


async def connect(server: Server, auth: str | None = None, **kwargs: Any) -> ZkClient:
    client = await ZkClient.connect(server.connect_string, **kwargs)
    if auth is not None:
        await client.add_auth("digest", auth.encode())
    return client


async def resume_and_close(server: Server, session: Session | None) -> None:
    """Close a session whose connection the server dropped (so it does not expire later)."""
    assert session is not None
    client = await ZkClient.connect(server.connect_string, session=session)
    await client.close()


async def drain(client: ZkClient, root: str) -> list[tuple[int, str]]:
    """Round trip, then every notification received before its reply, paths relative to root."""
    await client.exists("/")
    out = []
    while not client.events.empty():
        event = client.events.get_nowait()
        out.append((event.type, event.path.removeprefix(root)))
    return out


async def wait_gone(server: Server, path: str, timeout_s: float = 15.0) -> bool:
    """Whether `path` is deleted within `timeout_s`: an exists watch on a connection of its own
    (so no test client's event queue is touched), re-armed after any other event."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with await connect(server) as watcher:
        while await watcher.exists(path, watch=True) is not None:
            try:
                await asyncio.wait_for(watcher.events.get(), deadline - loop.time())
            except TimeoutError:
                return False
    return True


def stat_facts(stat: Stat | None, base: int) -> Any:
    if stat is None:
        return None
    return {
        "version": stat.version, "cversion": stat.cversion, "aversion": stat.aversion,
        "dataLength": stat.dataLength, "numChildren": stat.numChildren,
        "ephemeralOwner": "session" if stat.ephemeralOwner else 0,
        "czxid": stat.czxid - base, "mzxid": stat.mzxid - base, "pzxid": stat.pzxid - base,
    }


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def write(self, out: bytearray) -> None:
        out += self.data


# ----------------------------------------------------------------- zxids (run these first)


def test_failed_writes_consume_exactly_one_zxid(servers: tuple[Server, Server],
                                                aio: AsyncRunner) -> None:
    async def zxid_steps(server: Server) -> Any:
        async with await connect(server) as c:
            root = fresh_root("zxid")
            await c.create(root)
            await c.exists(root)
            marks = [c.last_zxid]
            steps: list[Any] = []
            for name, call in [
                ("create existing", lambda: c.create(root)),
                ("delete missing", lambda: c.delete(root + "/missing")),
                ("set bad version", lambda: c.set(root, b"x", 7)),
                ("create under missing", lambda: c.create(root + "/no/such")),
                ("create bad path", lambda: c.create(root + "/bad/")),
                ("multi failing", lambda: c.multi([
                    (OpCode.create, CreateRequest(root + "/m", b"", OPEN, 0)),
                    (OpCode.delete, DeleteRequest(root + "/missing", -1)),
                ])),
                ("read exists", lambda: c.exists(root)),
                ("read get", lambda: c.get(root)),
                ("sync", lambda: c.sync(root)),
                ("create ok", lambda: c.create(root + "/ok")),
                ("multi ok", lambda: c.multi([
                    (OpCode.create, CreateRequest(root + "/m1", b"", OPEN, 0)),
                    (OpCode.create, CreateRequest(root + "/m2", b"", OPEN, 0)),
                ])),
            ]:
                steps.append((name, brief(await outcome(call())), c.last_zxid - marks[-1]))
                marks.append(c.last_zxid)
            srvr = await asyncio.to_thread(server.four_letter, "srvr")
            match = re.search(r"^Zxid: (0x[0-9a-f]+)$", srvr, re.M)
            assert match, srvr
            steps.append(("srvr Zxid = last reply zxid", int(match.group(1), 16) == marks[-1]))
            return steps

    result = on_both(aio, servers, zxid_steps)
    assert [step[-1] for step in result] == [1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, True]


# ----------------------------------------------------------------------- stat exactness


def test_cversion_arithmetic_and_pzxid(servers: tuple[Server, Server], aio: AsyncRunner) -> None:
    async def cversions(server: Server) -> Any:
        async with await connect(server) as c:
            root = fresh_root("cver")
            _, created = await c.create(root)
            base = created.czxid
            facts = [stat_facts(created, base)]
            for step in ["+a", "+b", "+c", "-b", "+d", "-a", "set", "acl", "+x fails"]:
                if step.startswith("+"):
                    await outcome(c.create(f"{root}/{step[1:].split()[0]}/y"
                                           if "fails" in step else f"{root}/{step[1:]}"))
                elif step.startswith("-"):
                    await c.delete(f"{root}/{step[1:]}")
                elif step == "set":
                    await c.set(root, b"data")
                else:
                    await c.set_acl(root, OPEN)
                facts.append((step, stat_facts(await c.exists(root), base)))
            zk_stat = await c.exists("/zookeeper")
            children, _ = await c.get_children("/zookeeper")
            assert zk_stat is not None
            facts.append(("/zookeeper", zk_stat.cversion, zk_stat.numChildren, children,
                          zk_stat.czxid, zk_stat.ctime, zk_stat.ephemeralOwner))
            return facts

    result = on_both(aio, servers, cversions)
    final = result[-2][1]
    assert (final["cversion"], final["numChildren"], final["pzxid"]) == (6, 2, 6)
    assert (final["version"], final["aversion"]) == (1, 1)
    assert result[-1] == ("/zookeeper", -2, 2, ["config", "quota"], 0, 0, 0)


def test_sequential_suffix_is_the_creation_counter(servers: tuple[Server, Server],
                                                   aio: AsyncRunner) -> None:
    async def sequence_names(server: Server) -> Any:
        async with await connect(server) as c:
            root = fresh_root("seq")
            await c.create(root)
            p = root + "/p"
            await c.create(p)
            names = [(await c.create(p + "/s", flags=2))[0], (await c.create(p + "/s", flags=2))[0]]
            await c.delete(names[0])
            await c.create(p + "/plain")
            names.append((await c.create(p + "/s", flags=2))[0])
            names.append((await c.create(p + "/", flags=2))[0])  # the name is the counter only
            names.append((await c.create(p + "/e-", flags=3))[0])
            names.append((await c.create(p + "/t", flags=6, ttl_ms=3_600_000))[0])
            names.append(await outcome(c.create(p + "/s", flags=2, acl=[])))  # fails: INVALIDACL
            names.append((await c.create(p + "/s", flags=2))[0])
            stat = await c.exists(p)
            assert stat is not None
            await c.delete(names[-3])  # the TTL node: nothing left to expire later
            return [n if isinstance(n, tuple) else n.removeprefix(p) for n in names], (
                stat.cversion, stat.numChildren)

    names, (cversion, num_children) = on_both(aio, servers, sequence_names)
    assert names == ["/s0000000000", "/s0000000001", "/s0000000003", "/0000000004",
                     "/e-0000000005", "/t0000000006", ("error", "INVALIDACL"), "/s0000000007"]
    assert (cversion, num_children) == (2 * 8 - 7, 7)


def test_null_and_empty_data(servers: tuple[Server, Server], aio: AsyncRunner) -> None:
    async def data_kinds(server: Server) -> Any:
        async with await connect(server) as c:
            root = fresh_root("null")
            await c.create(root)
            out = []
            for name, data in [("none", None), ("empty", b""), ("some", b"abc")]:
                _, stat = await c.create(f"{root}/{name}", data)
                got, stat2 = await c.get(f"{root}/{name}")
                out.append((name, stat.dataLength, got, stat2.dataLength))
            await c.set(root + "/some", None)
            out.append(await c.get(root + "/some"))
            return [o if len(o) == 4 else (o[0], o[1].dataLength, o[1].version) for o in out]

    assert on_both(aio, servers, data_kinds) == [
        ("none", 0, None, 0), ("empty", 0, b"", 0), ("some", 3, b"abc", 3), (None, 0, 1)]


# ----------------------------------------------------------------------------- paths


def test_invalid_paths_matrix(servers: tuple[Server, Server], kazoo_factory: KazooFactory) -> None:
    """Every malformed path against every operation, each in a fresh root holding a and a/b:
    the outcome and how many zxids the request consumed. All cells are compared at once."""
    from tests.differential.ops import RawOp, Side, run_op

    suffixes = ["/a/", "/zz/", "//a", "/./a", "/a/.", "/a/..", "/../a", "/a//b", "/a/b/",
                "/", "/a\x01b", "/a\x00b", "/a\x7fb", "/a/\u00e9t\u00e9", "!x", "!"]
    kinds = ["create", "create_seq", "delete", "set", "set_acl", "exists", "get", "children",
             "children2", "get_acl", "sync"]
    sides = [Side(s, main=kazoo_factory(s), anon=kazoo_factory(s)) for s in servers]
    cells = [(kind, suffix) for suffix in suffixes for kind in kinds]
    roots = {cell: fresh_root("paths") for cell in cells}
    tables: list[dict[tuple[str, str], Any]] = []
    for side in sides:
        table = {}
        for cell in cells:
            side.root = roots[cell]
            for rel in ("", "/a", "/a/b"):
                side.main.create(side.root + rel)
            side.main.exists(side.root)
            before = side.main.last_zxid
            result = run_op(side, RawOp(*cell))
            side.main.exists(side.root)
            table[cell] = (result, side.main.last_zxid - before)
        tables.append(table)
    zk, zl = tables
    differences = {cell: (zk[cell], zl[cell]) for cell in zk if zk[cell] != zl[cell]}
    assert not differences, "zoolog differs from ZooKeeper 3.8 on malformed paths:\n" + "\n".join(
        f"  {kind:8} {suffix!r:22} ZooKeeper {theirs!r}  zoolog {ours!r}"
        for (kind, suffix), (theirs, ours) in differences.items()
    )
    assert zk[("create", "/a/")] == (("error", "BadArgumentsError"), 1)
    assert zk[("create", "//a")] == (("error", "NoNodeError"), 1)
    assert zk[("exists", "/a/")] == (None, 0)


# ------------------------------------------------------------------------------ multi


def test_multi_results(servers: tuple[Server, Server], aio: AsyncRunner,
                       kazoo_factory: KazooFactory) -> None:
    async def raw_multi(server: Server) -> Any:
        async with await connect(server) as c:
            root = fresh_root("multi")
            await c.create(root, b"v0")
            create = (OpCode.create, CreateRequest(root + "/n", b"", OPEN, 0))
            bad_set = (OpCode.setData, SetDataRequest(root, b"x", 5))
            check = (OpCode.check, CheckVersionRequest(root, 0))
            delete_missing = (OpCode.delete, DeleteRequest(root + "/missing", -1))
            out = []
            for ops in ([create, bad_set, check], [delete_missing, create, check],
                        [create, check, bad_set], []):
                results = await c.multi(ops)
                out.append([(op, err) for op, err, _ in results])
            out.append(await c.exists(root + "/n"))
            ok = await c.multi([create, check, (OpCode.setData, SetDataRequest(root, b"y", 0)),
                                (OpCode.create2, CreateRequest(root + "/s", b"", OPEN, 2)),
                                (OpCode.delete, DeleteRequest(root + "/n", 0))])
            out.append([(op, err, r.removeprefix(root) if isinstance(r, str) else
                         (r.version, r.dataLength) if isinstance(r, Stat) else r)
                        for op, err, r in ok])
            return out

    zk = on_both(aio, servers, raw_multi)
    assert zk[0] == [(OpCode.create, 0), (OpCode.setData, -103), (OpCode.check, -2)]
    assert zk[1] == [(OpCode.delete, -101), (OpCode.create, -2), (OpCode.check, -2)]
    assert zk[3] == [] and zk[4] is None
    assert zk[5] == [(1, 0, "/n"), (13, 0, None), (5, 0, (1, 1)), (15, 0, "/s0000000001"),
                     (2, 0, None)]

    outcomes = []
    for server in servers:
        client = kazoo_factory(server)
        root = fresh_root("kmulti")
        client.create(root)
        tx = client.transaction()
        tx.create(root + "/x")
        tx.set_data(root, b"v", version=3)
        tx.check(root, 0)
        outcomes.append([type(r) for r in tx.commit()])
    assert outcomes[1] == outcomes[0] == [RolledBackError, BadVersionError, RuntimeInconsistency]


# ---------------------------------------------------------------------- TTL and containers


def test_ttl_nodes(servers: tuple[Server, Server], aio: AsyncRunner) -> None:
    async def ttl(server: Server) -> Any:
        async with await connect(server) as c:
            root = fresh_root("ttl")
            await c.create(root)
            out: dict[str, Any] = {}
            path, stat = await c.create(root + "/long", b"d", flags=5, ttl_ms=3_600_000)
            out["create"] = (path.removeprefix(root), stat.ephemeralOwner, stat.dataLength)
            out["exists"] = (await c.exists(root + "/long") or Stat()).ephemeralOwner
            for name, (flags, ttl_ms) in {
                "ttl 0": (5, 0), "ttl -1": (5, -1), "ttl 2^40": (5, 1 << 40),
                "ttl max": (5, (1 << 40) - 1), "flags 0": (0, 1000), "flags 1": (1, 1000),
                "flags 2": (2, 1000), "flags 4": (4, 1000), "flags 7": (7, 1000),
            }.items():
                req = CreateTTLRequest(f"{root}/{name.replace(' ', '_')}", b"", OPEN, flags,
                                       ttl_ms)
                result = await outcome(c.request(OpCode.createTTL, req))
                out[name] = result if isinstance(result, tuple) else "created"
            out["create2 flags 5"] = await outcome(c.request(
                OpCode.create2, CreateRequest(root + "/c5", b"", OPEN, 5)))
            out["create2 flags 7"] = await outcome(c.request(
                OpCode.create2, CreateRequest(root + "/c7", b"", OPEN, 7)))
            # expiry: a childless TTL node goes, one with a child stays until the child goes
            await c.create(root + "/short", flags=5, ttl_ms=200)
            await c.create(root + "/parent", flags=5, ttl_ms=200)
            await c.create(root + "/parent/child")
            out["short expired"] = await wait_gone(server, root + "/short")
            out["parent kept"] = await c.exists(root + "/parent") is not None
            await c.delete(root + "/parent/child")
            out["parent expired"] = await wait_gone(server, root + "/parent")
            for name in ("long", "ttl_max", "flags_0", "flags_1", "flags_2", "flags_4"):
                children, _ = await c.get_children(root)
                for child in children:
                    if child.startswith(name):
                        await outcome(c.delete(f"{root}/{child}"))
            out["left"] = (await c.get_children(root))[0]
            return out

    zk = on_both(aio, servers, ttl)
    assert zk["create"] == ("/long", 0, 1) and zk["exists"] == 0
    assert zk["ttl 0"] == zk["ttl -1"] == zk["ttl 2^40"] == ("error", "BADARGUMENTS")
    assert zk["create2 flags 5"] == ("error", "BADARGUMENTS")
    assert zk["short expired"] and zk["parent kept"] and zk["parent expired"]


def test_container_nodes(servers: tuple[Server, Server], aio: AsyncRunner) -> None:
    async def containers(server: Server) -> Any:
        async with await connect(server) as c:
            root = fresh_root("cont")
            await c.create(root)
            out: dict[str, Any] = {}
            path, stat = await c.create(root + "/used", b"x", container=True)
            out["create"] = (path.removeprefix(root), stat.ephemeralOwner)
            exists = await c.exists(root + "/used")
            out["exists owner"] = exists.ephemeralOwner if exists else None
            await c.create(root + "/never", container=True)
            # op 19 with flags 0 still makes a container
            await c.request(OpCode.createContainer, CreateRequest(root + "/op19f0", b"", OPEN, 0))
            # op 15 (create2) with flags 4 makes a plain persistent node
            await c.request(OpCode.create2, CreateRequest(root + "/op15f4", b"", OPEN, 4))
            body = await outcome(c.request(
                OpCode.createContainer, CreateRequest(root + "/op19f2-", b"", OPEN, 2)))
            seq_container = Create2Response.from_bytes(body).path or "" if isinstance(
                body, bytes) else ""
            out["op19 flags 2"] = body if isinstance(body, tuple) else (
                seq_container.removeprefix(root))
            if seq_container:
                await c.create(seq_container + "/child")
                await c.delete(seq_container + "/child")
                out["op19 flags 2 deleted"] = await wait_gone(server, seq_container)
            for name in ("used", "op19f0", "op15f4"):
                await c.create(f"{root}/{name}/child")
                await c.delete(f"{root}/{name}/child")
            out["used deleted"] = await wait_gone(server, root + "/used")
            out["op19 flags 0 deleted"] = await wait_gone(server, root + "/op19f0")
            out["op15 flags 4 kept"] = await c.exists(root + "/op15f4") is not None
            out["never-used kept"] = await c.exists(root + "/never") is not None
            out["left"] = (await c.get_children(root))[0]
            for child in out["left"]:
                await c.delete(f"{root}/{child}")
            return out

    zk = on_both(aio, servers, containers)
    assert zk["create"] == ("/used", 0) and zk["exists owner"] == 0
    assert zk["used deleted"] and zk["op19 flags 0 deleted"]
    assert zk["op15 flags 4 kept"] and zk["never-used kept"]
    assert zk["op19 flags 2"] == "/op19f2-0000000004" and zk["op19 flags 2 deleted"]


# ---------------------------------------------------------------------------- watches


def test_persistent_and_recursive_watches(servers: tuple[Server, Server],
                                          aio: AsyncRunner) -> None:
    async def persistent(server: Server) -> Any:
        async with await connect(server) as w, await connect(server) as p, \
                await connect(server) as c:
            root = fresh_root("pw")
            await c.create(root)
            await c.create(root + "/a")
            body = await w.request(OpCode.addWatch, AddWatchRequest(root, 1))
            await p.add_watch(root + "/a", recursive=False)
            await c.create(root + "/a/b", b"1")
            await c.set(root + "/a/b", b"2")
            await c.set(root + "/a/b", b"3")
            await c.delete(root + "/a/b")
            await c.set(root + "/a", b"x")
            await c.create(root + "/z")
            recursive_events = await drain(w, root)
            persistent_events = await drain(p, root)
            removed = await outcome(w.request(OpCode.removeWatches,
                                              RemoveWatchesRequest(root, 3)))
            again = await outcome(w.request(OpCode.removeWatches, RemoveWatchesRequest(root, 3)))
            check = await outcome(w.request(OpCode.checkWatches, CheckWatchesRequest(root, 3)))
            await c.create(root + "/after")
            after = await drain(w, root)
            await w.exists(root + "/q", watch=True)
            check_data = await outcome(w.request(OpCode.checkWatches,
                                                 CheckWatchesRequest(root + "/q", 2)))
            check_child = await outcome(w.request(OpCode.checkWatches,
                                                  CheckWatchesRequest(root + "/q", 1)))
            return (body, recursive_events, persistent_events, removed, again, check, after,
                    check_data, check_child)

    zk = on_both(aio, servers, persistent)
    assert zk[0] == b"\0\0\0\0"
    assert zk[1] == [(1, "/a/b"), (3, "/a/b"), (3, "/a/b"), (2, "/a/b"), (3, "/a"), (1, "/z")]
    assert zk[2] == [(4, "/a"), (4, "/a"), (3, "/a")]
    assert zk[4] == ("error", "NOWATCHER") and zk[6] == []


def test_standard_watch_after_persistent_one(servers: tuple[Server, Server],
                                             aio: AsyncRunner) -> None:
    """ZooKeeper 3.8 keeps one watch mode per (connection, path) and table: a standard watch set
    *after* a persistent one on the same path by the same connection replaces it, so the watch
    is gone after its first event (ZOOKEEPER-4466, a bug fixed in 3.9). zoolog deliberately
    keeps the persistent watch, as 3.9 does, delivering one event per change to the connection
    (docs/ARCHITECTURE.md, deliberate differences). The other order, and a recursive watch on
    an ancestor, keep the persistent watch on both servers."""

    async def mixed_modes(server: Server) -> Any:
        out = {}
        for variant in ("persistent then exists", "persistent then exists (missing node)",
                        "persistent then getChildren", "exists then persistent",
                        "recursive on parent then exists"):
            async with await connect(server) as w, await connect(server) as c:
                root = fresh_root("mixed")
                await c.create(root)
                p = root + "/p"
                if variant != "persistent then exists (missing node)":
                    await c.create(p)
                if variant.startswith("persistent"):
                    await w.add_watch(p)
                elif variant.startswith("recursive"):
                    await w.add_watch(root, recursive=True)
                if "getChildren" in variant:
                    await w.get_children(p, watch=True)
                else:
                    await w.exists(p, watch=True)
                if variant.startswith("exists"):
                    await w.add_watch(p)
                if variant == "persistent then exists (missing node)":
                    await c.create(p)
                if "getChildren" in variant:
                    await c.create(p + "/x")
                    await c.create(p + "/y")
                await c.set(p, b"1")
                await c.set(p, b"2")
                out[variant] = await drain(w, root)
        return out

    zk = aio.run(mixed_modes(servers[0]), 60.0)
    zl = aio.run(mixed_modes(servers[1]), 60.0)
    same = {
        "exists then persistent": [(3, "/p"), (3, "/p")],
        "recursive on parent then exists": [(3, "/p"), (3, "/p")],
    }
    assert zk == same | {
        "persistent then exists": [(3, "/p")],
        "persistent then exists (missing node)": [(1, "/p")],
        "persistent then getChildren": [(4, "/p"), (3, "/p"), (3, "/p")],
    }
    assert zl == same | {
        "persistent then exists": [(3, "/p"), (3, "/p")],
        "persistent then exists (missing node)": [(1, "/p"), (3, "/p"), (3, "/p")],
        "persistent then getChildren": [(4, "/p"), (4, "/p"), (3, "/p"), (3, "/p")],
    }


def test_watch_management_requests(servers: tuple[Server, Server], aio: AsyncRunner) -> None:
    """addWatch / checkWatches / removeWatches edge cases (ops 106, 17, 18)."""

    async def watch_requests(server: Server) -> Any:
        async with await connect(server) as w, await connect(server) as c:
            root = fresh_root("wreq")
            await c.create(root)
            await c.create(root + "/p")
            p = root + "/p"
            out: dict[str, Any] = {}
            out["addWatch missing node"] = await outcome(
                w.request(OpCode.addWatch, AddWatchRequest(root + "/nope", 0)))
            out["addWatch mode 5"] = await outcome(
                w.request(OpCode.addWatch, AddWatchRequest(p, 5)))
            out["addWatch trailing slash"] = await outcome(
                w.request(OpCode.addWatch, AddWatchRequest(p + "/", 0)))
            await w.get(p, watch=True)
            for name, kind in (("children", 1), ("data", 2), ("any", 3), ("type 9", 9)):
                out[f"checkWatches {name} on a data watch"] = await outcome(
                    w.request(OpCode.checkWatches, CheckWatchesRequest(p, kind)))
            out["removeWatches data"] = await outcome(
                w.request(OpCode.removeWatches, RemoveWatchesRequest(p, 2)))
            await c.set(p, b"1")
            out["events after removing the data watch"] = await drain(w, root)
            await w.exists(root + "/q", watch=True)
            out["checkWatches data on an exist watch"] = await outcome(
                w.request(OpCode.checkWatches, CheckWatchesRequest(root + "/q", 2)))
            await w.add_watch(p)
            out["removeWatches data on a persistent watch"] = await outcome(
                w.request(OpCode.removeWatches, RemoveWatchesRequest(p, 2)))
            await c.set(p, b"2")
            await c.create(p + "/k")
            out["events after removing its data part"] = await drain(w, root)
            return out

    zk = on_both(aio, servers, watch_requests)
    assert zk["addWatch missing node"] == b"\0\0\0\0"
    assert zk["checkWatches children on a data watch"] == ("error", "NOWATCHER")
    assert zk["events after removing the data watch"] == []


def test_wrong_request_kinds_inside_multi(servers: tuple[Server, Server],
                                          aio: AsyncRunner) -> None:
    """A read inside multi (op 14) or a write inside multiRead (op 22)."""

    async def mixed_multi(server: Server) -> Any:
        out = {}
        root = fresh_root("mixmulti")
        for name, op, sub_op, record in [
            ("getData in multi", OpCode.multi, OpCode.getData, GetDataRequest("/", False)),
            ("create in multiRead", OpCode.multiRead, OpCode.create,
             CreateRequest(root, b"", OPEN, 0)),
        ]:
            c = await connect(server)
            framing = bytearray()
            MultiHeader(sub_op, False, -1).write(framing)
            record.write(framing)
            MultiHeader(-1, True, -1).write(framing)
            result = brief(await outcome(c.request(op, _Raw(bytes(framing)))))
            out[name] = (result, "closed" if await connection_closed(c, 1.0) else "open")
            session = c.session
            await c.disconnect()
            await resume_and_close(server, session)
        async with await connect(server) as c:
            out["created"] = await c.exists(root) is not None
        return out

    assert on_both(aio, servers, mixed_multi) == {
        "getData in multi": (("error", "MARSHALLINGERROR"), "open"),
        "create in multiRead": (("error", "MARSHALLINGERROR"), "open"),
        "created": False,
    }


def test_set_watches_relative_zxid(servers: tuple[Server, Server], aio: AsyncRunner) -> None:
    """SetWatches (xid -8) fires at once for what changed after relativeZxid, re-arms the rest."""

    async def set_watches(server: Server) -> Any:
        async with await connect(server) as w, await connect(server) as c:
            root = fresh_root("sw")
            await c.create(root)
            for name in ("d1", "d2", "gone", "c1"):
                await c.create(f"{root}/{name}")
            await w.exists(root)
            relative = w.last_zxid
            await c.set(root + "/d1", b"new")
            await c.delete(root + "/gone")
            await c.create(root + "/new")
            await c.create(root + "/c1/x")
            data, exist, child = ["d1", "d2", "gone"], ["new", "missing"], ["c1", "d2", "gone"]
            body = await w.request(
                OpCode.setWatches,
                SetWatches(relative, [f"{root}/{n}" for n in data],
                           [f"{root}/{n}" for n in exist], [f"{root}/{n}" for n in child]),
                xid=Xid.SET_WATCHES,
            )
            immediate = await drain(w, root)
            await c.set(root + "/d2", b"v")
            await c.create(root + "/missing")
            await c.create(root + "/d2/x")
            await c.set(root + "/d1", b"again")  # its watch already fired: no event
            rearmed = await drain(w, root)
            return body, immediate, rearmed

    body, immediate, rearmed = on_both(aio, servers, set_watches)
    assert body == b""
    assert sorted(immediate) == sorted([(3, "/d1"), (2, "/gone"), (1, "/new"), (4, "/c1"),
                                        (2, "/gone")])
    assert rearmed == [(3, "/d2"), (1, "/missing"), (4, "/d2")]


def test_ephemerals_go_with_the_session(servers: tuple[Server, Server], aio: AsyncRunner) -> None:
    async def ephemeral_cleanup(server: Server) -> Any:
        async with await connect(server) as w, await connect(server) as c:
            root = fresh_root("eph")
            await c.create(root)
            owner = await connect(server)
            _, stat = await owner.create(root + "/e1", b"", flags=1)
            await owner.create(root + "/e2", b"", flags=3)
            assert owner.session is not None
            out: list[Any] = [stat.ephemeralOwner == owner.session.session_id]
            out.append(await outcome(owner.create(root + "/e1/child")))
            await w.exists(root + "/e1", watch=True)
            await w.get_children(root, watch=True)
            await owner.close()
            out.append(sorted(await drain(w, root)))
            out.append((await c.get_children(root))[0])
            return out

    zk = on_both(aio, servers, ephemeral_cleanup)
    assert zk == [True, ("error", "NOCHILDRENFOREPHEMERALS"), [(2, "/e1"), (4, "")], []]


def test_event_is_queued_before_the_reply_that_caused_it(servers: tuple[Server, Server],
                                                         aio: AsyncRunner) -> None:
    async def same_session(server: Server) -> Any:
        async with await connect(server) as c:
            root = fresh_root("evord")
            await c.create(root, b"0")
            await c.get(root, watch=True)
            await c.set(root, b"1")
            queued_at_reply = c.events.qsize()
            await c.get_children(root, watch=True)
            await c.create(root + "/k")
            queued_after_create = c.events.qsize()
            events = []
            while not c.events.empty():
                ev = c.events.get_nowait()
                events.append((ev.type, ev.state, ev.path.removeprefix(root)))
            return queued_at_reply, queued_after_create, events

    assert on_both(aio, servers, same_session) == (1, 2, [(3, 3, ""), (4, 3, "")])


# ------------------------------------------------------------------ ACLs and auth


def test_acl_checks_and_getacl_masking(servers: tuple[Server, Server], aio: AsyncRunner) -> None:
    async def acls(server: Server) -> Any:
        async with await connect(server, auth="alice:secret") as alice, \
                await connect(server) as anon:
            root = fresh_root("acl")
            await alice.create(root)
            out: dict[str, Any] = {}
            alice_read = [ACL(1, Id("digest", ALICE_HASH))]
            mixed = [ACL(31, Id("digest", ALICE_HASH)), ACL(1, Id("world", "anyone"))]
            await alice.create(root + "/p", b"secret", ALICE_ALL)
            await alice.create(root + "/q", b"q", mixed)
            await alice.create(root + "/r", b"r", alice_read)
            await alice.create(root + "/ip", b"i", [ACL(31, Id("ip", "127.0.0.1"))])
            await alice.create(root + "/ipnet", b"i", [ACL(1, Id("ip", "127.0.0.0/8"))])
            await alice.create(root + "/far", b"i", [ACL(31, Id("ip", "10.1.2.3"))])

            def acl_view(result: Any) -> Any:
                if isinstance(result, tuple) and result[0] == "error":
                    return result
                return [(a.perms, a.id.scheme, a.id.id) for a in result[0]], result[1].aversion

            out["anon exists p"] = (await anon.exists(root + "/p")) is not None
            out["anon get p"] = await outcome(anon.get(root + "/p"))
            out["anon children p"] = await outcome(anon.get_children(root + "/p"))
            out["anon getAcl p"] = await outcome(anon.get_acl(root + "/p"))
            out["anon setAcl p bad version"] = await outcome(anon.set_acl(root + "/p", OPEN, 9))
            out["alice setAcl p bad version"] = await outcome(alice.set_acl(root + "/p", OPEN, 9))
            out["anon create under p"] = await outcome(anon.create(root + "/p/x"))
            out["anon delete p"] = await outcome(anon.delete(root + "/p"))
            out["anon getAcl q"] = acl_view(await outcome(anon.get_acl(root + "/q")))
            out["alice getAcl q"] = acl_view(await outcome(alice.get_acl(root + "/q")))
            out["alice getAcl r"] = acl_view(await outcome(alice.get_acl(root + "/r")))
            out["anon getAcl r"] = await outcome(anon.get_acl(root + "/r"))
            out["alice set r"] = await outcome(alice.set(root + "/r", b"w"))
            out["anon get ip"] = (await outcome(anon.get(root + "/ip")))[0]
            out["anon get ipnet"] = (await outcome(anon.get(root + "/ipnet")))[0]
            out["anon get far"] = await outcome(anon.get(root + "/far"))
            for name, acl in {
                "empty": [], "auth without auth": [ACL(31, Id("auth", ""))],
                "world someone": [ACL(31, Id("world", "someone"))],
                "unknown scheme": [ACL(31, Id("nosuch", "x"))],
                "digest no colon": [ACL(31, Id("digest", "alice"))],
                "ip garbage": [ACL(31, Id("ip", "not-an-ip"))],
                "ip bad bits": [ACL(31, Id("ip", "127.0.0.1/99"))],
                "perms 0": [ACL(0, Id("world", "anyone"))],
                "perms 64": [ACL(64, Id("world", "anyone"))],
            }.items():
                created = await outcome(anon.create(f"{root}/{name.replace(' ', '_')}", b"", acl))
                out[f"create acl {name}"] = brief(created)
            out["setAcl empty"] = await outcome(alice.set_acl(root + "/q", []))
            for name, acl in {
                "perms -1": [ACL(-1, Id("world", "anyone"))],
                "perms 65": [ACL(65, Id("world", "anyone"))],
                "duplicate entries": OPEN + OPEN,
                "duplicate digest": [*ALICE_ALL, ACL(31, Id("digest", ALICE_HASH))],
            }.items():
                path = f"{root}/{name.replace(' ', '_')}"
                created = brief(await outcome(alice.create(path, b"", acl)))
                stored = acl_view(await outcome(alice.get_acl(path))) if created == "ok" else None
                writable = brief(await outcome(anon.set(path, b"w"))) if created == "ok" else None
                out[f"acl {name}"] = (created, stored, writable)
            await alice.create(root + "/mine", b"", [ACL(31, Id("auth", ""))])
            out["auth acl expands"] = acl_view(await alice.get_acl(root + "/mine"))
            whoami = await anon.request(OpCode.whoAmI, None)
            out["whoami anon"] = sorted((i.authScheme, i.user) for i in
                                        WhoAmIResponse.from_bytes(whoami).clientInfo or [])
            whoami = await alice.request(OpCode.whoAmI, None)
            out["whoami alice"] = sorted((i.authScheme, i.user) for i in
                                         WhoAmIResponse.from_bytes(whoami).clientInfo or [])
            return out

    zk = on_both(aio, servers, acls)
    assert zk["anon exists p"] is True
    assert zk["anon get p"] == zk["anon getAcl p"] == ("error", "NOAUTH")
    assert zk["anon setAcl p bad version"] == ("error", "NOAUTH")
    assert zk["alice setAcl p bad version"] == ("error", "BADVERSION")
    assert zk["anon getAcl q"] == ([(31, "digest", "alice:x"), (1, "world", "anyone")], 0)
    assert zk["alice getAcl q"] == ([(31, "digest", ALICE_HASH), (1, "world", "anyone")], 0)
    assert zk["create acl empty"] == zk["setAcl empty"] == ("error", "INVALIDACL")
    assert zk["auth acl expands"] == ([(31, "digest", ALICE_HASH)], 0)
    assert zk["acl perms 65"] == ("ok", ([(65, "world", "anyone")], 0), ("error", "NOAUTH"))
    assert zk["acl duplicate entries"] == ("ok", ([(31, "world", "anyone")], 0), "ok")


def test_auth_schemes_and_who_am_i(servers: tuple[Server, Server], aio: AsyncRunner) -> None:
    """addauth per scheme: accepted (and what whoAmI then lists) or AUTHFAILED + closed."""

    async def auth_schemes(server: Server) -> Any:
        out = {}
        for scheme, credential in [("digest", b"alice:secret"), ("digest", b"alice:wrong"),
                                   ("digest", b"nocolon"), ("digest", b"a:b:c"),
                                   ("ip", b"1.2.3.4"), ("world", b"anyone"), ("sasl", b"x"),
                                   ("super", b"x"), ("nosuch", b"x")]:
            c = await connect(server)
            result = await outcome(c.add_auth(scheme, credential))
            if result is None:
                body = await c.request(OpCode.whoAmI, None)
                result = sorted((i.authScheme, i.user)
                                for i in WhoAmIResponse.from_bytes(body).clientInfo or [])
                out[f"{scheme} {credential.decode()}"] = (result, "open")
                await c.close()
            else:
                out[f"{scheme} {credential.decode()}"] = (
                    result, "closed" if await connection_closed(c) else "open")
                session = c.session
                await c.disconnect()
                await resume_and_close(server, session)
        return out

    zk = on_both(aio, servers, auth_schemes)
    assert zk["digest alice:secret"] == ([("digest", "alice"), ("ip", "127.0.0.1")], "open")
    assert zk["nosuch x"] == zk["world anyone"] == (("error", "AUTHFAILED"), "closed")


# ------------------------------------------------------------------------ sessions


def test_session_timeout_negotiation(servers: tuple[Server, Server], aio: AsyncRunner) -> None:
    async def negotiated(server: Server) -> Any:
        out = []
        for asked in (1000, 4000, 10_000, 40_000, 100_000):
            client = await connect(server, timeout_ms=asked)
            assert client.session is not None
            out.append(client.session.timeout_ms)
            await client.close()
        return out

    assert on_both(aio, servers, negotiated) == [4000, 4000, 10_000, 40_000, 40_000]


def test_wrong_password_reconnect_kicks_the_live_connection(servers: tuple[Server, Server],
                                                           aio: AsyncRunner) -> None:
    async def wrong_password(server: Server) -> Any:
        owner = await connect(server)
        session = owner.session
        assert session is not None
        root = fresh_root("pwd")
        await owner.create(root)
        await owner.create(root + "/eph", flags=1)
        bad = Session(session.session_id, bytes(16), session.timeout_ms)
        out = [await outcome(connect(server, session=bad))]
        out.append(await connection_closed(owner))  # the live connection is kicked
        await owner.disconnect()
        async with await connect(server, session=session) as again:
            out.append(again.session == session)
            out.append((await again.exists(root + "/eph")) is not None)
        return out

    assert on_both(aio, servers, wrong_password) == [("error", "SESSIONEXPIRED"), True, True,
                                                     True]


def test_session_expiry_deletes_ephemerals(servers: tuple[Server, Server],
                                           aio: AsyncRunner) -> None:
    """A session whose client goes silent expires after its timeout (within about a tick):
    its ephemerals go in one step, watchers see NodeDeleted, and it cannot be resumed."""

    async def expiry(server: Server) -> Any:
        async with await connect(server) as w:
            root = fresh_root("expiry")
            await w.create(root)
            owner = await connect(server, timeout_ms=4000)
            session = owner.session
            await owner.create(root + "/e1", flags=1)
            await owner.create(root + "/e2", flags=3)
            await w.exists(root + "/e1", watch=True)
            await w.get_children(root, watch=True)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await owner.disconnect()  # no closeSession: the server has to expire it
            gone = await wait_gone(server, root + "/e1", timeout_s=20)
            elapsed = loop.time() - started
            children, _ = await w.get_children(root)
            events = sorted(await drain(w, root))
            resumed = await outcome(connect(server, session=session))
            return {"gone": gone, "within timeout + 2 ticks": 3.5 <= elapsed <= 8.5,
                    "children": children, "events": events, "resume": brief(resumed)}

    async def both() -> list[Any]:
        return list(await asyncio.gather(*(expiry(server) for server in servers)))

    zk, zl = aio.run(both(), 60)
    assert zl == zk, f"ZooKeeper 3.8: {zk!r}\nzoolog: {zl!r}"
    assert zk == {"gone": True, "within timeout + 2 ticks": True, "children": [],
                  "events": [(2, "/e1"), (4, "")], "resume": ("error", "SESSIONEXPIRED")}


def test_client_ahead_of_the_server_is_refused(servers: tuple[Server, Server],
                                               aio: AsyncRunner) -> None:
    async def ahead(server: Server) -> Any:
        host, _, port = server.connect_string.rpartition(":")
        client = ZkClient()
        client.last_zxid = 1 << 50
        try:
            await asyncio.wait_for(client._open(host, int(port), 10_000, None), 10)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            return type(exc).__name__
        finally:
            await client.disconnect()
        return "connected"

    assert on_both(aio, servers, ahead) in ("IncompleteReadError", "ConnectionResetError")


def test_unknown_opcode_gets_unimplemented_and_closes(servers: tuple[Server, Server],
                                                      aio: AsyncRunner) -> None:
    async def unknown(server: Server) -> Any:
        c = await connect(server)
        out = [await outcome(c.request(99, None)), await connection_closed(c)]
        session = c.session
        await c.disconnect()
        await resume_and_close(server, session)
        return out

    assert on_both(aio, servers, unknown) == [("error", "UNIMPLEMENTED"), True]


def test_unknown_opcode_reply_header_and_close_on_the_wire(servers: tuple[Server, Server],
                                                           aio: AsyncRunner) -> None:
    """The bytes: the reply header ZooKeeper 3.8 sends for an unknown opcode (its xid, zxid
    and err) relative to the server's last zxid, and that nothing follows it but the close."""
    async def raw(server: Server) -> Any:
        c = await connect(server)
        root = fresh_root("unknown-op")
        await c.create(root, b"")  # a zxid above 0
        last = (await c.exists(root)).mzxid
        session = c.session
        await c.disconnect()
        assert session is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        connect_body = struct.pack(">iqiq", 0, last, 30_000, session.session_id) + \
            struct.pack(">i", len(session.password)) + session.password + b"\0"
        writer.write(struct.pack(">i", len(connect_body)) + connect_body)
        (length,) = struct.unpack(">i", await reader.readexactly(4))
        await reader.readexactly(length)
        writer.write(struct.pack(">iii", 8, 77, 99))  # xid 77, opcode 99
        (length,) = struct.unpack(">i", await reader.readexactly(4))
        xid, zxid, err = struct.unpack(">iqi", (await reader.readexactly(length))[:16])
        rest = await asyncio.wait_for(reader.read(), 10)  # b"" once the server closed
        writer.close()
        await resume_and_close(server, session)
        zxid_kind = ("last" if zxid == last else "minus-one" if zxid == -1 else
                     "zero" if zxid == 0 else f"other({zxid - last:+d})")
        return [length, xid, zxid_kind, err, rest]

    zk, zl = (aio.run(raw(server)) for server in servers)
    assert zl == zk
    assert zk[1] == 77 and zk[3] == -6 and zk[4] == b""


# --------------------------------------------------------------- newer read requests


def test_get_all_children_number_ephemerals_and_multi_read(servers: tuple[Server, Server],
                                                           aio: AsyncRunner) -> None:
    async def reads(server: Server) -> Any:
        async with await connect(server) as c:
            root = fresh_root("reads")
            await c.create(root)
            for rel in ("a", "a/b", "a/b/c", "b"):
                await c.create(f"{root}/{rel}", rel.encode())
            await c.create(root + "/e1", flags=1)
            await c.create(root + "/a/e2", flags=1)
            await c.create(root + "/ex", flags=3)
            out: dict[str, Any] = {}
            for rel in ("", "/a", "/a/b/c", "/missing"):
                result = await outcome(c.request(OpCode.getAllChildrenNumber,
                                                 GetAllChildrenNumberRequest(root + rel)))
                out[f"count {rel}"] = (result if isinstance(result, tuple) else
                                       GetAllChildrenNumberResponse.from_bytes(result).totalNumber)
            for prefix in (root, root + "/a", root + "/e", root + "/missing", "/"):
                body = await c.request(OpCode.getEphemerals, GetEphemeralsRequest(prefix))
                paths = GetEphemeralsResponse.from_bytes(body).ephemerals or []
                out[f"ephemerals {prefix.removeprefix(root)}"] = sorted(
                    p.removeprefix(root) for p in paths)
            framing = bytearray()
            for op, record in [(OpCode.getData, GetDataRequest(root + "/a", False)),
                               (OpCode.getChildren, GetChildrenRequest(root, False)),
                               (OpCode.getData, GetDataRequest(root + "/missing", False)),
                               (OpCode.getChildren, GetChildrenRequest(root + "/a/b", False))]:
                MultiHeader(op, False, -1).write(framing)
                record.write(framing)
            MultiHeader(-1, True, -1).write(framing)
            body = await c.request(OpCode.multiRead, _Raw(bytes(framing)))
            results: list[Any] = []
            pos = 0
            while True:
                header, pos = MultiHeader.read(body, pos)
                if header.done:
                    break
                if header.type == OpCode.getData:
                    data, pos = GetDataResponse.read(body, pos)
                    results.append(("data", data.data, data.stat.version))
                elif header.type == OpCode.getChildren:
                    children, pos = GetChildrenResponse.read(body, pos)
                    results.append(("children", sorted(children.children or [])))
                else:
                    error, pos = ErrorResponse.read(body, pos)
                    results.append(("error", header.type, header.err, error.err))
            out["multiRead"] = results
            out["multiRead trailer"] = body[pos:]
            return out

    zk = on_both(aio, servers, reads)
    assert (zk["count "], zk["count /a"], zk["count /a/b/c"]) == (7, 3, 0)
    assert zk["count /missing"] == ("error", "NONODE")
    assert zk["ephemerals "] == ["/a/e2", "/e1", "/ex0000000003"]
    assert zk["ephemerals /e"] == ["/e1", "/ex0000000003"]
    assert zk["multiRead"][2] == ("error", -1, -101, -101)


# ------------------------------------------------------------------- special nodes


def test_special_nodes(servers: tuple[Server, Server], aio: AsyncRunner) -> None:
    async def special(server: Server) -> Any:
        async with await connect(server) as c:
            out: dict[str, Any] = {}
            for path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
                out[f"delete {path}"] = await outcome(c.delete(path))
                stat = await c.exists(path)
                facts = stat_facts(stat, 0) | {"ctime": stat.ctime if stat else None}
                if path == "/":  # its children are the tests' roots
                    facts = {k: v for k, v in facts.items()
                             if k not in ("cversion", "numChildren", "pzxid")}
                out[f"stat {path}"] = facts
                acl, _ = await c.get_acl(path)
                out[f"acl {path}"] = [(a.perms, a.id.scheme, a.id.id) for a in acl]
            out["create /"] = await outcome(c.create("/"))
            out["create /zookeeper"] = await outcome(c.create("/zookeeper"))
            name = f"/zookeeper/x{uuid.uuid4().hex[:6]}"
            out["create under /zookeeper"] = brief(await outcome(c.create(name)))
            out["delete it"] = await outcome(c.delete(name))
            out["children /zookeeper"] = (await c.get_children("/zookeeper"))[0]
            out["get config"] = (await c.get("/zookeeper/config"))[0]
            out["get quota"] = (await c.get("/zookeeper/quota"))[0]
            out["sync missing"] = await outcome(c.sync("/no/such/node"))
            return out

    zk = on_both(aio, servers, special)
    assert zk["delete /"] == zk["delete /zookeeper"] == ("error", "BADARGUMENTS")
    assert zk["create /zookeeper"] == ("error", "NODEEXISTS")
    assert zk["create under /zookeeper"] == "ok"


# ---------------------------------------------------------------- four-letter words


def test_four_letter_words(servers: tuple[Server, Server]) -> None:
    replies = [
        {word: server.four_letter(word) for word in ("ruok", "isro", "srvr", "stat", "envi",
                                                     "conf", "mntr", "wchs", "dirs")}
        for server in servers
    ]
    zk, zl = replies
    assert zl["ruok"] == zk["ruok"] == "imok"
    assert zl["isro"] == zk["isro"] == "rw"

    def keys(text: str, sep: str) -> list[str]:
        return [line.split(sep, 1)[0] for line in text.splitlines() if sep in line]

    assert keys(zl["srvr"], ":") == keys(zk["srvr"], ":")
    assert re.match(r"Zookeeper version: 3\.8\.\d+-", zl["srvr"]), zl["srvr"]
    assert "Mode: standalone" in zl["srvr"] and "Mode: standalone" in zk["srvr"]
    assert zl["stat"].splitlines()[:2][1] == zk["stat"].splitlines()[:2][1] == "Clients:"
    version = re.compile(r"zookeeper.version=(\d+)\.(\d+)\.(\d+)-")
    zk_version, zl_version = version.search(zk["envi"]), version.search(zl["envi"])
    assert zk_version and zl_version and zl_version.groups() == zk_version.groups()
    assert zl["envi"].splitlines()[0] == zk["envi"].splitlines()[0] == "Environment:"
    conf = {k: v for k, _, v in (line.partition("=") for line in zk["conf"].splitlines())}
    conf_zl = {k: v for k, _, v in (line.partition("=") for line in zl["conf"].splitlines())}
    for key in ("tickTime", "minSessionTimeout", "maxSessionTimeout", "maxClientCnxns"):
        assert conf_zl.get(key) == conf[key], key
    mntr_keys = set(keys(zk["mntr"], "\t"))
    core = {"zk_version", "zk_server_state", "zk_avg_latency", "zk_max_latency",
            "zk_min_latency", "zk_packets_received", "zk_packets_sent",
            "zk_num_alive_connections", "zk_outstanding_requests", "zk_znode_count",
            "zk_watch_count", "zk_ephemerals_count", "zk_approximate_data_size",
            "zk_open_file_descriptor_count", "zk_max_file_descriptor_count"}
    assert core <= mntr_keys
    assert core - set(keys(zl["mntr"], "\t")) == set()
    assert "zk_server_state\tstandalone" in zl["mntr"]
    assert re.fullmatch(r"\d+ connections watching \d+ paths\nTotal watches:\d+\n?", zl["wchs"])
    assert keys(zl["dirs"], ":") == keys(zk["dirs"], ":")


def test_unknown_four_letter_word_gets_no_reply(servers: tuple[Server, Server]) -> None:
    def unknown(server: Server) -> str:
        with contextlib.suppress(OSError):
            return server.four_letter("abcd")
        return "<error>"

    assert [unknown(server) for server in servers] == ["", ""]

