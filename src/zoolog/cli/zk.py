"""Talk to a coordination service with zkCli's verbs: `zoolog zk [-server H:P] VERB ARGS`.

Verbs: ls [-R] [-s] PATH, get [-s] PATH, set [-v V] PATH DATA, create [-e] [-s] [-c] [-t TTL]
PATH [DATA] [ACL], delete [-v V] PATH, deleteall PATH, stat PATH, addWatch [-m MODE] PATH,
getAcl PATH, setAcl [-v V] PATH ACL, addauth SCHEME AUTH, sync PATH, whoami, and any
four-letter word (ruok, srvr, stat, mntr, ...) passed through. Without a verb it reads commands
from stdin, one per line, like zkCli's shell. `--tls` (with --tls-ca, --tls-cert, --tls-key)
connects to a secureClientPort; `--jaas FILE` authenticates with SASL DIGEST-MD5 as the JAAS
file's Client section says. Works against zoolog and Apache ZooKeeper alike.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import ssl
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from zoolog.client.zk import ZkClient, four_letter_word
from zoolog.coord import acl as acls
from zoolog.coord.errors import Code, ZkError
from zoolog.errors import ConfigError
from zoolog.protocol.zk._generated.jute_records import ACL, Id, Stat, WhoAmIResponse
from zoolog.protocol.zk.connection import FOUR_LETTER_WORDS
from zoolog.protocol.zk.opcodes import CreateFlag, EventType, OpCode
from zoolog.server.jaas import parse_jaas

_PERMS = {"r": acls.READ, "w": acls.WRITE, "c": acls.CREATE, "d": acls.DELETE, "a": acls.ADMIN}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-server", "--server", default="127.0.0.1:2181", help="host:port")
    parser.add_argument("-timeout", "--timeout", type=int, default=30_000,
                        help="session timeout in ms")
    parser.add_argument("--tls", action="store_true",
                        help="connect over TLS (a secureClientPort), as zkCli.sh with "
                             "-Dzookeeper.client.secure=true")
    parser.add_argument("--tls-ca", metavar="PEM", help="CA certificates the server's "
                        "certificate must chain to (default: the system's)")
    parser.add_argument("--tls-cert", metavar="PEM", help="client certificate (its subject is "
                        "the x509 identity), with --tls-key")
    parser.add_argument("--tls-key", metavar="PEM", help="the client certificate's private key")
    parser.add_argument("--jaas", metavar="FILE", help="authenticate with SASL DIGEST-MD5 as "
                        "the username/password of this JAAS file's Client section, as zkCli.sh "
                        "does with -Djava.security.auth.login.config")
    parser.add_argument("verb", nargs="?", help="zkCli verb; omit to read commands from stdin")
    parser.add_argument("args", nargs=argparse.REMAINDER)


def format_stat(stat: Stat) -> str:
    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%a %b %d %H:%M:%S UTC %Y")

    return "\n".join([
        f"cZxid = {stat.czxid:#x}",
        f"ctime = {when(stat.ctime)}",
        f"mZxid = {stat.mzxid:#x}",
        f"mtime = {when(stat.mtime)}",
        f"pZxid = {stat.pzxid:#x}",
        f"cversion = {stat.cversion}",
        f"dataVersion = {stat.version}",
        f"aclVersion = {stat.aversion}",
        f"ephemeralOwner = {stat.ephemeralOwner & 0xFFFFFFFFFFFFFFFF:#x}",
        f"dataLength = {stat.dataLength}",
        f"numChildren = {stat.numChildren}",
    ])


def parse_acl(text: str) -> list[ACL]:
    """zkCli ACL syntax: `scheme:id:perms[,scheme:id:perms...]`, perms from 'rwcda'."""
    out = []
    for item in text.split(","):
        scheme, _, rest = item.partition(":")
        ident, _, perms = rest.rpartition(":")
        if not scheme or not perms or any(p not in _PERMS for p in perms):
            raise ValueError(f"bad ACL {item!r}: expected scheme:id:perms with perms in rwcda")
        out.append(ACL(sum(_PERMS[p] for p in set(perms)), Id(scheme, ident)))
    return out


def format_acl(acl: ACL) -> str:
    perms = "".join(k for k in "cdrwa" if acl.perms & _PERMS[k])  # zkCli's order
    return f"'{acl.id.scheme},'{acl.id.id}\n: {perms}"


class Shell:
    """Runs zkCli verbs against one client, printing as zkCli does."""

    def __init__(self, client: ZkClient, host: str, port: int) -> None:
        self.client = client
        self.host = host
        self.port = port
        self.verbs: dict[str, Callable[[list[str]], Awaitable[None]]] = {
            "ls": self.ls, "get": self.get, "set": self.set, "create": self.create,
            "delete": self.delete, "deleteall": self.deleteall, "rmr": self.deleteall,
            "stat": self.stat, "addWatch": self.add_watch, "getAcl": self.get_acl,
            "setAcl": self.set_acl, "addauth": self.addauth, "sync": self.sync,
            "whoami": self.whoami,
        }

    async def run(self, verb: str, args: list[str]) -> None:
        handler = self.verbs.get(verb)
        if handler is None:
            raise ValueError(f"unknown command {verb!r}; known: {', '.join(sorted(self.verbs))}")
        await handler(args)

    @staticmethod
    def _split(args: list[str], flags: str, valued: str = "") -> tuple[dict[str, str], list[str]]:
        opts: dict[str, str] = {}
        rest: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg.startswith("-") and len(arg) == 2 and arg[1] in flags + valued:
                if arg[1] in valued:
                    if i + 1 >= len(args):
                        raise ValueError(f"{arg} needs a value")
                    opts[arg[1]] = args[i + 1]
                    i += 1
                else:
                    opts[arg[1]] = ""
            else:
                rest.append(arg)
            i += 1
        return opts, rest

    async def whoami(self, args: list[str]) -> None:
        body = await self.client.request(OpCode.whoAmI, None)
        print("Auth scheme: User")
        for info in WhoAmIResponse.from_bytes(body).clientInfo or []:
            print(f"{info.authScheme}: {info.user}")

    async def ls(self, args: list[str]) -> None:
        opts, rest = self._split(args, "Rsw")
        path = rest[0] if rest else "/"
        if "R" in opts:
            stack = [path]
            while stack:
                current = stack.pop()
                print(current)
                children, _ = await self.client.get_children(current)
                for child in reversed(children):
                    stack.append(current.rstrip("/") + "/" + child)
            return
        children, stat = await self.client.get_children(path)
        print("[" + ", ".join(children) + "]")
        if "s" in opts:
            print(format_stat(stat))

    async def get(self, args: list[str]) -> None:
        opts, rest = self._split(args, "sw")
        data, stat = await self.client.get(rest[0])
        print("null" if data is None else data.decode("utf-8", "replace"))
        if "s" in opts:
            print(format_stat(stat))

    async def set(self, args: list[str]) -> None:
        opts, rest = self._split(args, "s", "v")
        stat = await self.client.set(rest[0], rest[1].encode() if len(rest) > 1 else b"",
                                     int(opts.get("v", "-1")))
        if "s" in opts:
            print(format_stat(stat))

    async def create(self, args: list[str]) -> None:
        opts, rest = self._split(args, "esc", "t")
        if not rest:
            raise ValueError("create [-s] [-e] [-c] [-t ttl] path [data] [acl]")
        path = rest[0]
        data = rest[1].encode() if len(rest) > 1 else None
        acl = parse_acl(rest[2]) if len(rest) > 2 else None
        flags = CreateFlag.PERSISTENT
        if "e" in opts:
            flags = CreateFlag.EPHEMERAL_SEQUENTIAL if "s" in opts else CreateFlag.EPHEMERAL
        elif "s" in opts:
            flags = CreateFlag.PERSISTENT_SEQUENTIAL
        ttl = int(opts["t"]) if "t" in opts else 0
        if ttl:
            flags = (CreateFlag.PERSISTENT_SEQUENTIAL_WITH_TTL if "s" in opts
                     else CreateFlag.PERSISTENT_WITH_TTL)
        created, _ = await self.client.create(path, data, acl, flags, ttl, container="c" in opts)
        print(f"Created {created}")

    async def delete(self, args: list[str]) -> None:
        opts, rest = self._split(args, "", "v")
        await self.client.delete(rest[0], int(opts.get("v", "-1")))

    async def deleteall(self, args: list[str]) -> None:
        _, rest = self._split(args, "")
        root = rest[0]
        order: list[str] = []
        stack = [root]
        while stack:
            current = stack.pop()
            order.append(current)
            children, _ = await self.client.get_children(current)
            stack.extend(current.rstrip("/") + "/" + c for c in children)
        for path in reversed(order):
            try:
                await self.client.delete(path)
            except ZkError as err:
                if err.code != Code.NONODE:
                    raise

    async def stat(self, args: list[str]) -> None:
        _, rest = self._split(args, "w")
        stat = await self.client.exists(rest[0])
        if stat is None:
            raise ZkError(Code.NONODE, rest[0])
        print(format_stat(stat))

    async def add_watch(self, args: list[str]) -> None:
        opts, rest = self._split(args, "", "m")
        mode = opts.get("m", "PERSISTENT_RECURSIVE").upper()
        if mode not in ("PERSISTENT", "PERSISTENT_RECURSIVE"):
            raise ValueError("-m takes PERSISTENT or PERSISTENT_RECURSIVE")
        await self.client.add_watch(rest[0], recursive=mode == "PERSISTENT_RECURSIVE")

    async def get_acl(self, args: list[str]) -> None:
        _, rest = self._split(args, "s")
        acl_list, _ = await self.client.get_acl(rest[0])
        for acl in acl_list:
            print(format_acl(acl))

    async def set_acl(self, args: list[str]) -> None:
        opts, rest = self._split(args, "sR", "v")
        await self.client.set_acl(rest[0], parse_acl(rest[1]), int(opts.get("v", "-1")))

    async def addauth(self, args: list[str]) -> None:
        await self.client.add_auth(args[0], args[1].encode() if len(args) > 1 else b"")

    async def sync(self, args: list[str]) -> None:
        await self.client.sync(args[0])
        print("Sync is OK")


def _describe(err: ZkError, verb: str, args: list[str]) -> str:
    path = next((a for a in args if a.startswith("/")), "")
    messages = {
        Code.NONODE: f"Node does not exist: {path}",
        Code.NODEEXISTS: f"Node already exists: {path}",
        Code.NOTEMPTY: f"Node not empty: {path}",
        Code.BADVERSION: f"version No is not valid : {path}",
        Code.NOAUTH: f"Insufficient permission : {path}",
        Code.NOCHILDRENFOREPHEMERALS: f"Ephemerals cannot have children: {path}",
        Code.INVALIDACL: f"Invalid ACL: {path}",
    }
    return messages.get(err.code, f"{verb} failed: {err.code.name} ({int(err.code)})")


async def _main(args: argparse.Namespace) -> int:
    host, _, port_text = args.server.rpartition(":")
    host = host or "127.0.0.1"
    port = int(port_text or 2181)
    # `stat` is both a 4lw and a zkCli verb: with a path it is the verb
    if args.verb in FOUR_LETTER_WORDS and not (args.verb == "stat" and args.args):
        print(await four_letter_word(host, port, args.verb), end="")
        return 0
    tls = None
    if args.tls or args.tls_cert:
        tls = ssl.create_default_context(cafile=args.tls_ca)
        if args.tls_cert:
            tls.load_cert_chain(args.tls_cert, args.tls_key)
    sasl = client_credentials(args.jaas) if args.jaas else None
    client = await ZkClient.connect(f"{host}:{port}", args.timeout, tls=tls, sasl=sasl)
    shell = Shell(client, host, port)
    status = 0
    try:
        if args.verb:
            commands = [[args.verb, *args.args]]
        else:
            commands = [shlex.split(line) for line in sys.stdin if line.strip()]
        for words in commands:
            if words[0] in ("quit", "exit"):
                break
            try:
                await shell.run(words[0], words[1:])
            except ZkError as err:
                print(_describe(err, words[0], words[1:]), file=sys.stderr)
                status = 1
            except (ValueError, IndexError) as exc:
                print(f"{words[0]}: {exc or 'missing argument'}", file=sys.stderr)
                status = 2
        while not client.events.empty():
            event = client.events.get_nowait()
            print(f"WATCHER::\n\nWatchedEvent state:SyncConnected type:"
                  f"{EventType(event.type).name} path:{event.path}")
    finally:
        await client.close()
    return status


def client_credentials(path: str, section: str = "Client") -> tuple[str, str]:
    """(username, password) of a JAAS file's Client section (a DigestLoginModule's options)."""
    sections = parse_jaas(Path(path).read_text(encoding="utf-8"), path)
    for module in sections.get(section, []):
        if "username" in module.options and "password" in module.options:
            return module.options["username"], module.options["password"]
    raise ConfigError(f"JAAS file {path} has no {section!r} section with username and "
                      "password")


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except (ConnectionError, OSError, TimeoutError) as exc:
        print(f"zoolog zk: cannot reach {args.server}: {exc}", file=sys.stderr)
        return 1
    except ZkError as err:
        print(f"zoolog zk: {err}", file=sys.stderr)
        return 1
    except ConfigError as err:
        print(f"zoolog zk: {err}", file=sys.stderr)
        return 2
