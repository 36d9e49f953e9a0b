"""The coordination service of one server, sans-I/O: requests in, frames and txns out.

Owns the per-connection state (session, identities, the FIFO of requests in flight), the watch
manager and the session tracker, and drives `CoordState`. The runtime (`zoolog.server`) feeds it
decoded events and the current time, then collects what the service asks for with
`take_output()`:

    sends       (conn_id, frames): write these bytes (whole frames, in order) to that connection
    closes      (conn_id, reason): close that connection once its frames are written
    proposals   (txn, conn_id, pending): log (and replicate) the txn, then, in log order, call
                `committed(txn, conn_id, pending, now)` with the rest of the proposal as given

Ordering guarantees (ZooKeeper's): replies leave each connection in request order, a read waits
for the writes its connection sent before it, and a watch event is sent before the reply of the
write that caused it. Writes are prepped at once and applied when `committed` is called, in log
order; reads run against applied state only, so nothing a client sees can be rolled back.
"""

from __future__ import annotations

import base64
import secrets
import struct
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from zoolog.coord import acl as acls
from zoolog.coord.datatree import (
    CONTAINER_OWNER,
    ApplyResult,
    CoordState,
    Node,
    is_ttl_owner,
    ttl_of,
)
from zoolog.coord.errors import ERR, ZkError
from zoolog.coord.paths import validate_path
from zoolog.coord.prep import WRITE_OPS, MultiPrepError, PrepContext, prep_write
from zoolog.coord.sessions import SessionTracker, initial_session_id, session_password
from zoolog.coord.txn import Txn
from zoolog.coord.watches import MODE, Mode, WatchManager
from zoolog.limits import Limits
from zoolog.protocol.sasl.digest_md5 import DigestMd5Server, SaslError
from zoolog.protocol.zk._generated.jute_records import (
    ACL,
    ClientInfo,
    ConnectRequest,
    ConnectResponse,
    CreateSessionTxn,
    ErrorResponse,
    GetACLResponse,
    GetAllChildrenNumberResponse,
    GetChildrenResponse,
    GetDataResponse,
    GetEphemeralsResponse,
    Id,
    MultiHeader,
    SetSASLResponse,
    SyncResponse,
    WhoAmIResponse,
)
from zoolog.protocol.zk.connection import (
    MisplacedOp,
    encode_connect_response,
    encode_event,
    encode_multi_body,
    encode_raw_reply,
    encode_reply,
)
from zoolog.protocol.zk.opcodes import (
    EVENT,
    OP,
    STATE,
    WATCH_MODE,
    XID,
)

_ERROR_RESPONSE_OK = ErrorResponse(0)
_OPEN_ACL_LIST = list(acls.OPEN_ACL_UNSAFE)
_LEN = struct.Struct(">i")
_NULL_BUFFER = _LEN.pack(-1)
_NO_PASSWORD = bytes(16)


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    server_id: int = 1
    tick_ms: int = 2000
    min_session_timeout_ms: int = 0
    """0 means 2 x tick_ms, as in zoo.cfg."""
    max_session_timeout_ms: int = 0
    """0 means 20 x tick_ms, as in zoo.cfg."""
    super_digest: str | None = None
    """`user:base64(sha1)`: a session that proves it bypasses every ACL."""
    extended_types_enabled: bool = True
    """TTL nodes (ZooKeeper needs zookeeper.extendedTypesEnabled=true for them)."""
    sasl_users: Mapping[str, str] | None = None
    """DIGEST-MD5 users and passwords (a JAAS `Server` section); None: SASL is not configured
    and a sasl request fails with AUTHFAILED."""
    sasl_super_user: str | None = None
    """A SASL user who bypasses every ACL (zoo.cfg `superUser`, zookeeper.superUser)."""
    enforce_auth_schemes: frozenset[str] = frozenset()
    """Non-empty: every request but auth and sasl needs an identity of one of these schemes,
    or the connection gets SESSIONCLOSEDREQUIRESASLAUTH and is closed (enforce.auth.*)."""
    allow_sasl_failed_clients: bool = False
    """Keep a connection whose SASL authentication failed (zookeeper.allowSaslFailedClients),
    unless enforcement requires sasl."""
    x509_super_user: str | None = None
    """A client certificate subject that bypasses every ACL
    (X509AuthenticationProvider.superUser)."""
    replicated: bool = False
    """One server of an ensemble (`coord/replica.py`): sessions touched by this server's
    clients are collected in `touched` for the leader, and `sync` waits for a quorum read
    index (`syncs` / `complete_sync`) instead of being answered at once."""
    limits: Limits = field(default_factory=Limits)

    @property
    def min_timeout_ms(self) -> int:
        return self.min_session_timeout_ms or 2 * self.tick_ms

    @property
    def max_timeout_ms(self) -> int:
        return self.max_session_timeout_ms or 20 * self.tick_ms


Proposal = tuple[Txn, int | None, "Pending | None"]
"""A txn to log, with the connection and FIFO entry waiting for it (None for the server's own
txns, such as session expiry)."""


class Output(NamedTuple):
    sends: list[tuple[int, bytes]]
    closes: list[tuple[int, str]]
    proposals: list[Proposal]


def _add_latency(target: ConnState | ServiceStats, latency_ms: int) -> None:
    if latency_ms < target.latency_min_ms or target.latency_count == 0:
        target.latency_min_ms = latency_ms
    if latency_ms > target.latency_max_ms:
        target.latency_max_ms = latency_ms
    target.latency_total_ms += latency_ms
    target.latency_count += 1


def _java_string_hash(text: str) -> int:
    """Java's String.hashCode (over UTF-16 code units), as an unsigned 32-bit value."""
    units = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + (units[i] << 8 | units[i + 1])) & 0xFFFFFFFF
    return h


def _java_hash_set_order(identities: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The order in which ZooKeeper 3.8 lists a connection's identities (whoAmI, zkCli's
    `whoami`): it keeps them in a set backed by a ConcurrentHashMap, which iterates by hash
    bucket (jute's Id.hashCode, the map's spread, a table of 16 until it holds 12), each bucket
    in insertion order."""
    size = 16
    while len(identities) > size * 3 // 4:
        size *= 2

    def bucket(identity: tuple[str, str]) -> int:
        h = (37 * (37 * 17 + _java_string_hash(identity[0])) + _java_string_hash(identity[1]))
        h &= 0xFFFFFFFF
        return ((h ^ (h >> 16)) & 0x7FFFFFFF) & (size - 1)

    return sorted(identities, key=bucket)


# states of a request in a connection's FIFO
_READ, _WRITE, _READY = 0, 1, 2

_CHILDREN_CACHE_MAX = 4096  # encoded child lists kept for getChildren(2)


class Pending:
    __slots__ = ("frame", "multi_fail", "op", "record", "started_ms", "state", "xid")

    def __init__(self, xid: int, op: int, record: Any, state: int, started_ms: int) -> None:
        self.xid = xid
        self.op = op
        self.record = record
        self.state = state
        self.started_ms = started_ms
        self.frame = b""
        self.multi_fail: tuple[int, int] | None = None  # (failing op index, code) from prep


class ConnState:
    """What the service knows of one connection."""

    __slots__ = (
        "close_after_flush",
        "close_reason",
        "closed_by_server",
        "conn_id",
        "established_ms",
        "held",
        "identities",
        "identity_tuple",
        "last_cxid",
        "last_op",
        "last_zxid",
        "latency_count",
        "latency_max_ms",
        "latency_min_ms",
        "latency_total_ms",
        "out",
        "peer",
        "pending",
        "prep_context",
        "received",
        "sasl",
        "sent",
        "session_id",
        "syncs_open",
        "timeout_ms",
        "touched_ms",
        "with_readonly_byte",
    )

    def __init__(self, conn_id: int, peer: tuple[str, int], now_ms: int) -> None:
        self.conn_id = conn_id
        self.peer = peer
        self.session_id = 0
        self.timeout_ms = 0
        self.identities: list[tuple[str, str]] = [("ip", peer[0])]
        self.identity_tuple = tuple(self.identities)  # kept equal to `identities`
        self.pending: deque[Pending] = deque()
        self.syncs_open = 0  # replicated: syncs awaiting their quorum read index
        self.held: list[Proposal] | None = None  # writes sent after an open sync
        self.out: list[bytes] = []  # frames not yet taken by the runtime
        self.prep_context: PrepContext | None = None
        self.sasl: DigestMd5Server | None = None  # a DIGEST-MD5 negotiation under way
        self.touched_ms = -1  # when the session's deadline was last pushed back
        self.close_after_flush = False
        self.closed_by_server = False
        self.close_reason = "closed after reply"
        self.with_readonly_byte = True
        self.established_ms = now_ms
        self.received = 0
        self.sent = 0
        self.last_op = "NA"
        self.last_cxid = -1
        self.last_zxid = -1
        self.latency_min_ms = 0
        self.latency_max_ms = 0
        self.latency_total_ms = 0
        self.latency_count = 0


@dataclass(slots=True)
class ServiceStats:
    packets_received: int = 0
    packets_sent: int = 0
    latency_min_ms: int = 0
    latency_max_ms: int = 0
    latency_total_ms: int = 0
    latency_count: int = 0


class CoordService:
    """One server's request processing; see the module docstring for the contract."""

    def __init__(self, state: CoordState, config: ServiceConfig, now_ms: int) -> None:
        self.state = state
        self.config = config
        self.limits = config.limits
        self.watches = WatchManager()
        self.tracker = SessionTracker(config.tick_ms)
        self.conns: dict[int, ConnState] = {}
        self.by_session: dict[int, set[int]] = {}
        self.proposals: list[Proposal] = []
        self._dirty: list[ConnState] = []  # connections with frames in `out`
        self._closes: list[tuple[int, str]] = []
        self.stats = ServiceStats()
        self._next_session_id = initial_session_id(config.server_id, now_ms)
        self._sessions_in_flight = 0  # createSession txns proposed, not yet committed
        self._children_cache: dict[str, tuple[Node, int, int, bytes]] = {}
        self._closing_sessions: set[int] = set()
        self.random_bytes: Callable[[int], bytes] = secrets.token_bytes  # SASL nonces
        self._enforced_schemes = config.enforce_auth_schemes  # read on every request
        self._replicated = config.replicated
        self.touched: set[int] = set()  # replicated only: sessions to report to the leader
        self.syncs: list[tuple[int, Pending]] = []  # replicated only: syncs awaiting a quorum
        for session in state.sessions.values():
            self.tracker.add(session.session_id, session.timeout_ms, now_ms)
        self._reads: dict[int, Callable[[ConnState, Any], tuple[int, bytes | None]]] = {
            OP.exists: self._read_exists,
            OP.getData: self._read_get_data,
            OP.getChildren: self._read_get_children,
            OP.getChildren2: self._read_get_children2,
            OP.getACL: self._read_get_acl,
            OP.sync: self._read_sync,
            OP.check: self._read_check,
            OP.ping: self._read_ping,
            OP.getAllChildrenNumber: self._read_all_children_number,
            OP.getEphemerals: self._read_ephemerals,
            OP.addWatch: self._read_add_watch,
            OP.checkWatches: self._read_check_watches,
            OP.removeWatches: self._read_remove_watches,
            OP.setWatches: self._read_set_watches,
            OP.setWatches2: self._read_set_watches,
            OP.whoAmI: self._read_who_am_i,
            OP.multiRead: self._read_multi,
            OP.reconfig: self._read_reconfig,
        }

    # ------------------------------------------------------------------ connections

    def open(self, conn_id: int, peer: tuple[str, int], now_ms: int,
             x509: str | None = None) -> None:
        """A client connected from `peer`; `x509` is the subject of the certificate it proved
        it holds in the TLS handshake."""
        conn = self.conns[conn_id] = ConnState(conn_id, peer, now_ms)
        if x509 is not None:
            conn.identities.append(("x509", x509))
            if x509 == self.config.x509_super_user:
                conn.identities.append(acls.SUPER_IDENTITY)
            conn.identity_tuple = tuple(conn.identities)

    def lost(self, conn_id: int) -> None:
        """The connection is gone (closed by either side): drop its watches, keep its session."""
        conn = self.conns.pop(conn_id, None)
        if conn is None:
            return
        self.watches.remove_watcher(conn_id)
        sessions = self.by_session.get(conn.session_id)
        if sessions is not None:
            sessions.discard(conn_id)
            if not sessions:
                del self.by_session[conn.session_id]

    def outstanding(self, conn_id: int) -> int:
        conn = self.conns.get(conn_id)
        return len(conn.pending) if conn is not None else 0

    def connect(
        self, conn_id: int, request: ConnectRequest, readonly_byte: bool, now_ms: int
    ) -> None:
        conn = self.conns[conn_id]
        conn.with_readonly_byte = readonly_byte
        self.stats.packets_received += 1
        conn.received += 1
        if request.lastZxidSeen > self.state.last_zxid:
            self._close(conn_id, f"client has seen zxid {request.lastZxidSeen:#x}, "
                                 f"newer than our {self.state.last_zxid:#x}")
            return
        timeout = min(max(request.timeOut, self.config.min_timeout_ms), self.config.max_timeout_ms)
        conn.timeout_ms = timeout
        if request.sessionId == 0:
            if len(self.state.sessions) + self._sessions_in_flight >= self.limits.sessions_max:
                self._refuse_session(conn)
                return
            session_id = self._next_session_id
            self._next_session_id += 1
            self._attach(conn, session_id)
            pending = Pending(0, OP.createSession, None, _WRITE, now_ms)
            conn.pending.append(pending)
            txn = Txn(session_id, 0, 0, now_ms, OP.createSession, (),
                      CreateSessionTxn(timeout))
            self._sessions_in_flight += 1
            self.proposals.append((txn, conn_id, pending))
            return
        session_id = request.sessionId
        for other in list(self.by_session.get(session_id, ())):
            if other != conn_id:
                self._close(other, "session reconnected on another connection")
                self.lost(other)
        session = self.state.sessions.get(session_id)
        if (
            session is None
            or session_id in self._closing_sessions
            or request.passwd != session_password(session_id)
        ):
            self._refuse_session(conn)
            return
        self._attach(conn, session_id)
        self.tracker.touch(session_id, now_ms)
        if self._replicated:
            self.touched.add(session_id)
        self._send(conn, self._connect_response(conn, session_id, timeout))

    def _attach(self, conn: ConnState, session_id: int) -> None:
        conn.session_id = session_id
        self.by_session.setdefault(session_id, set()).add(conn.conn_id)

    def _connect_response(self, conn: ConnState, session_id: int, timeout: int) -> bytes:
        response = ConnectResponse(0, timeout, session_id, session_password(session_id), False)
        return encode_connect_response(response, conn.with_readonly_byte)

    def _refuse_session(self, conn: ConnState) -> None:
        response = ConnectResponse(0, 0, 0, _NO_PASSWORD, False)
        self._send(conn, encode_connect_response(response, conn.with_readonly_byte))
        self._close(conn.conn_id, "session expired or unknown")
        conn.close_after_flush = True

    # ------------------------------------------------------------------ requests

    def request(self, conn_id: int, xid: int, op: int, record: Any, now_ms: int,
                body: bytes | None = None) -> None:
        """One decoded request from a connected client; `body` is the record's bytes as
        received, when the decoder kept them (`Request.body`)."""
        conn = self.conns[conn_id]
        conn.received += 1
        self.stats.packets_received += 1
        if conn.close_after_flush:
            return
        if conn.session_id and conn.touched_ms != now_ms:  # once per batch is enough
            conn.touched_ms = now_ms
            self.tracker.touch(conn.session_id, now_ms)
            if self._replicated:
                self.touched.add(conn.session_id)
        if xid != XID.PING and op != OP.auth:
            conn.last_cxid = xid
            conn.last_op = _OP_ABBREVIATIONS.get(op, "UNKN")
        enforced = self._enforced_schemes
        if enforced and op != OP.auth and op != OP.sasl and not any(
            scheme in enforced for scheme, _ in conn.identities
        ):
            # ZooKeeper's AuthenticationHelper: answer, then close the connection (the session
            # stays until it expires)
            self._answer_and_close(conn, xid, op,
                                   encode_reply(xid, 0, ERR.SESSIONCLOSEDREQUIRESASLAUTH),
                                   "no identity of a scheme authentication is enforced for")
            return
        if op in WRITE_OPS:
            self._write(conn, xid, op, record, now_ms, body)
        elif op == OP.closeSession:
            pending = Pending(xid, op, None, _WRITE, now_ms)
            conn.pending.append(pending)
            self._closing_sessions.add(conn.session_id)
            self._propose(conn, Txn(conn.session_id, xid, 0, now_ms, OP.closeSession), pending)
        elif op == OP.sync and self._replicated:
            pending = Pending(xid, op, record, _WRITE, now_ms)
            conn.pending.append(pending)
            conn.syncs_open += 1
            if conn.held is None:
                # the connection's later writes wait for the sync: were they logged at once,
                # one could apply before the sync's read index is confirmed, and the reads
                # queued behind the sync would see a write sent after them
                conn.held = []
            self.syncs.append((conn_id, pending))
        elif op == OP.auth:
            self._auth(conn, record)
        elif op == OP.sasl:
            self._sasl(conn, xid, record)
        elif conn.pending:
            conn.pending.append(Pending(xid, op, record, _READ, now_ms))
            self._flush(conn, now_ms)
        else:  # nothing ahead of it on this connection: answer at once
            self._send(conn, self._read_frame(conn, xid, op, record))
            self._record_latency(conn, 0)

    def unknown_op(self, conn_id: int, xid: int, op: int) -> None:
        """ZooKeeper answers an unknown opcode with UNIMPLEMENTED and closes the connection."""
        self._fail_unknown(self.conns[conn_id], xid, op)

    def _fail_unknown(self, conn: ConnState, xid: int, op: int) -> None:
        # zxid -1, as ZooKeeper 3.8's UnimplementedRequestProcessor answers (the request never
        # reached a processor that gives it a zxid; tests/differential checks the bytes)
        self._answer_and_close(conn, xid, op, encode_reply(xid, -1, ERR.UNIMPLEMENTED),
                               f"unknown opcode {op}")

    def _write(self, conn: ConnState, xid: int, op: int, record: Any, now_ms: int,
               body: bytes | None) -> None:
        pending = Pending(xid, op, record, _WRITE, now_ms)
        conn.pending.append(pending)
        ctx = conn.prep_context
        if ctx is None or ctx.session_id != conn.session_id or (
            ctx.identities is not conn.identity_tuple
        ):
            ctx = conn.prep_context = PrepContext(
                conn.session_id, conn.identity_tuple, self.limits,
                self.config.extended_types_enabled,
            )
        try:
            prepped = prep_write(op, record, ctx)
            txn = Txn(conn.session_id, xid, 0, now_ms, op, ctx.identities, prepped,
                      body if prepped is record else None)
        except ZkError as err:
            if isinstance(err, MultiPrepError):
                pending.multi_fail = (err.index, err.code)
            txn = Txn(conn.session_id, xid, 0, now_ms, OP.error, (), ErrorResponse(err.code))
        self._propose(conn, txn, pending)

    def _propose(self, conn: ConnState, txn: Txn, pending: Pending) -> None:
        if conn.held is not None:  # behind a sync: logged once the sync is answered
            conn.held.append((txn, conn.conn_id, pending))
        else:
            self.proposals.append((txn, conn.conn_id, pending))

    def _auth(self, conn: ConnState, record: Any) -> None:
        scheme = record.scheme or ""
        if scheme == "digest":
            ident = acls.digest_id((record.auth or b"").decode("utf-8", "replace"))
            if ident == self.config.super_digest and acls.SUPER_IDENTITY not in conn.identities:
                conn.identities.append(acls.SUPER_IDENTITY)
            if ("digest", ident) not in conn.identities:
                conn.identities.append(("digest", ident))
            conn.identity_tuple = tuple(conn.identities)
        # "ip" is accepted and adds nothing: ZooKeeper's ip provider ignores the credential and
        # vouches for the peer address, which every connection already carries
        if scheme in ("digest", "ip"):
            self._answer(conn, XID.AUTH, OP.auth, encode_reply(XID.AUTH, 0, ERR.OK))
        else:  # "sasl" among them: SASL is negotiated with sasl requests, never with auth
            self._answer_and_close(conn, XID.AUTH, OP.auth,
                                   encode_reply(XID.AUTH, 0, ERR.AUTHFAILED),
                                   f"authentication failed for scheme {scheme!r}")

    def _sasl(self, conn: ConnState, xid: int, record: Any) -> None:
        """One step of a SASL negotiation, answered in the connection's reply order with
        zxid 0, as ZooKeeper 3.8's processSasl does."""
        users = self.config.sasl_users
        try:
            if users is None:
                # ZooKeeper without a JAAS Server section answers OK with no token, and a
                # client then asks again until its own timeout: zoolog says no at once
                raise SaslError("SASL is not configured on this server (no JAAS Server "
                                "section: --jaas or java.security.auth.login.config)")
            sasl = conn.sasl
            if sasl is None or sasl.complete:
                nonce = base64.b64encode(self.random_bytes(30)).decode("ascii")
                sasl = conn.sasl = DigestMd5Server(users.get, nonce)
            token = sasl.evaluate(record.token or b"")
        except Exception as exc:  # SaslError, or a flaw in the mechanism: a failed login
            # either way, never an exception out of the service
            conn.sasl = None
            required = "sasl" in self.config.enforce_auth_schemes
            if self.config.allow_sasl_failed_clients and not required:
                self._answer(conn, xid, OP.sasl, encode_raw_reply(xid, 0, _NULL_BUFFER))
                return
            err = ERR.SESSIONCLOSEDREQUIRESASLAUTH if required else ERR.AUTHFAILED
            self._answer_and_close(conn, xid, OP.sasl,
                                   encode_raw_reply(xid, 0, _NULL_BUFFER, err),
                                   f"SASL authentication failed: {exc}")
            return
        if sasl.complete and sasl.authorization_id is not None:
            conn.sasl = None
            name = sasl.authorization_id
            if ("sasl", name) not in conn.identities:
                conn.identities.append(("sasl", name))
            if name == self.config.sasl_super_user and acls.SUPER_IDENTITY not in conn.identities:
                conn.identities.append(acls.SUPER_IDENTITY)
            conn.identity_tuple = tuple(conn.identities)
        self._answer(conn, xid, OP.sasl,
                     encode_raw_reply(xid, 0, SetSASLResponse(token).to_bytes()))

    def _answer(self, conn: ConnState, xid: int, op: int, frame: bytes) -> None:
        """A reply that needs no state, sent in the connection's reply order."""
        pending = Pending(xid, op, None, _READY, 0)
        pending.frame = frame
        conn.pending.append(pending)
        self._flush(conn, 0)

    def _answer_and_close(self, conn: ConnState, xid: int, op: int, frame: bytes,
                          reason: str) -> None:
        """Stop reading the connection, answer it after what is ahead of this reply, then close
        it (ZooKeeper's sendResponse + sendCloseSession + disableRecv)."""
        conn.close_after_flush = True
        conn.close_reason = reason
        self._answer(conn, xid, op, frame)

    def _close(self, conn_id: int, reason: str) -> None:
        self._closes.append((conn_id, reason))

    def close(self, conn_id: int, reason: str) -> None:
        """Close a connection for the runtime's own reasons (an ensemble server that lost its
        leader); its session lives on until it expires or the client comes back."""
        conn = self.conns.get(conn_id)
        if conn is not None and not conn.closed_by_server:
            conn.closed_by_server = True
            conn.close_after_flush = True  # read nothing more from it
            self._close(conn_id, reason)

    def close_all(self, reason: str) -> None:
        for conn_id in list(self.conns):
            self._close(conn_id, reason)

    # ------------------------------------------------------------------ ensemble hooks

    def proposal_lost(self, txn: Txn, conn_id: int | None, reason: str) -> None:
        """A proposal will never be answered (its leader went, or the link to it dropped
        it); it may still commit if the leader logged it. The connection waiting for it is
        closed, so that its client sees a connection loss, as after a ZooKeeper follower
        lost its leader."""
        if txn.op == OP.createSession and conn_id is not None:
            self._sessions_in_flight -= 1
        elif txn.op == OP.closeSession:
            self._closing_sessions.discard(txn.session_id)
        if conn_id is not None:
            self.close(conn_id, reason)

    def complete_sync(self, conn_id: int, pending: Pending, now_ms: int) -> None:
        """A quorum confirmed a read index this server has now applied: answer the sync."""
        conn = self.conns.get(conn_id)
        if conn is None or pending.state != _WRITE:
            return
        pending.state = _READ  # answered like a read once its turn comes (its zxid then)
        conn.syncs_open -= 1
        if conn.syncs_open == 0 and conn.held is not None:
            self.proposals.extend(conn.held)
            conn.held = None
        self._flush(conn, now_ms)

    def refresh_sessions(self, now_ms: int) -> None:
        """This server became the ensemble's leader: every session gets a fresh timeout
        (ZooKeeper's leader does the same), since the touches of the old one are gone."""
        self.tracker = SessionTracker(self.config.tick_ms)
        for session in self.state.sessions.values():
            self.tracker.add(session.session_id, session.timeout_ms, now_ms)
        self._closing_sessions.clear()

    def replace_state(self, state: CoordState, now_ms: int) -> None:
        """The ensemble sent a snapshot newer than what this server applied: serve it.
        Every client connection is closed (they come back with their sessions and watches,
        as a ZooKeeper follower's clients do after it resynchronised)."""
        self.close_all("server loaded a snapshot from the leader")
        self.state = state
        self._children_cache.clear()
        self.refresh_sessions(now_ms)

    def take_output(self) -> Output:
        """What the service asked for since the last call (see the module docstring)."""
        sends = []
        for conn in self._dirty:
            out = conn.out
            sends.append((conn.conn_id, out[0] if len(out) == 1 else b"".join(out)))
            conn.out = []
        self._dirty = []
        output = Output(sends, self._closes, self.proposals)
        self._closes = []
        self.proposals = []
        return output

    # ------------------------------------------------------------------ time

    def tick(self, now_ms: int) -> None:
        """Expire sessions whose clients went silent: each becomes a closeSession txn."""
        for session_id in self.tracker.expired(now_ms):
            if session_id in self._closing_sessions or session_id not in self.state.sessions:
                continue
            self._closing_sessions.add(session_id)
            self.proposals.append((Txn(session_id, 0, 0, now_ms, OP.closeSession), None, None))

    def expirable_nodes(self, now_ms: int) -> list[str]:
        """Empty containers that once had children and expired TTL nodes (ContainerManager)."""
        out = []
        for path, node in self.state.nodes.items():
            owner = node.ephemeral_owner
            if owner >= 0 or node.children:
                continue
            if owner == CONTAINER_OWNER:
                if node.cversion > 0:
                    out.append(path)
            elif is_ttl_owner(owner) and now_ms - node.mtime > ttl_of(owner):
                out.append(path)
        return out

    def propose_internal(self, txn: Txn) -> None:
        self.proposals.append((txn, None, None))

    # ------------------------------------------------------------------ commit

    def committed(self, txn: Txn, conn_id: int | None, pending: Pending | None,
                  now_ms: int) -> None:
        """`txn` is durable (and, in a cluster, committed): apply it and answer. `conn_id` and
        `pending` are those of its proposal."""
        result = self.state.apply(txn)
        op = txn.op
        if op == OP.createSession:
            if conn_id is not None:
                self._sessions_in_flight -= 1
            if result.err == ERR.OK:
                self.tracker.add(txn.session_id,
                                 self.state.sessions[txn.session_id].timeout_ms, now_ms)
        elif op == OP.closeSession:
            self.tracker.remove(txn.session_id)
            self._closing_sessions.discard(txn.session_id)
        for event, path in result.triggers:
            watchers = self.watches.trigger(event, path)
            if watchers:
                frame = encode_event(event, STATE.SyncConnected, path)
                for watcher in watchers:
                    conn = self.conns.get(watcher)
                    if conn is not None:
                        self._send(conn, frame)
        if pending is not None and conn_id is not None:
            conn = self.conns.get(conn_id)
            if conn is not None:
                self._complete(conn, pending, txn, result)
                self._flush(conn, now_ms)
        if op == OP.closeSession:
            for conn_id in list(self.by_session.get(txn.session_id, ())):
                conn = self.conns.get(conn_id)
                if conn is not None and not conn.pending:
                    self._close(conn_id, "session closed")
                elif conn is not None:
                    conn.close_after_flush = True

    def _complete(self, conn: ConnState, pending: Pending, txn: Txn, result: ApplyResult) -> None:
        zxid = self.state.last_zxid
        conn.last_zxid = zxid
        op = pending.op
        pending.state = _READY
        if op == OP.createSession:
            if result.err:
                pending.frame = encode_connect_response(
                    ConnectResponse(0, 0, 0, _NO_PASSWORD, False), conn.with_readonly_byte
                )
                conn.close_after_flush = True
            else:
                pending.frame = self._connect_response(conn, txn.session_id, conn.timeout_ms)
            return
        if op == OP.multi:
            if pending.multi_fail is not None:
                index, code = pending.multi_fail
                ops = pending.record
                rows = [(o, 0, None) for o, _ in ops[:index]]
                rows.append((ops[index][0], code, None))
                rows.extend((o, ERR.RUNTIMEINCONSISTENCY, None) for o, _ in ops[index + 1 :])
                pending.frame = encode_raw_reply(pending.xid, zxid, _encode_failed_multi(rows))
            elif result.err:
                pending.frame = encode_reply(pending.xid, zxid, result.err)
            else:
                assert isinstance(result.response, list)
                rows = [(r.op, r.err, r.response) for r in result.response]
                body = (
                    _encode_failed_multi(rows)
                    if any(r.err for r in result.response)
                    else encode_multi_body(rows)
                )
                pending.frame = encode_raw_reply(pending.xid, zxid, body)
            return
        pending.frame = encode_reply(pending.xid, zxid, result.err, result.response)
        if op == OP.closeSession:
            conn.close_after_flush = True

    def _flush(self, conn: ConnState, now_ms: int) -> None:
        """Send every reply at the head of the connection's FIFO that is ready."""
        pending_queue = conn.pending
        while pending_queue:
            head = pending_queue[0]
            if head.state == _WRITE:
                break
            if head.state == _READ:
                head.frame = self._read_frame(conn, head.xid, head.op, head.record)
            pending_queue.popleft()
            self._send(conn, head.frame)
            if head.started_ms and head.op != OP.ping:
                self._record_latency(conn, now_ms - head.started_ms)
        if conn.close_after_flush and not pending_queue:
            # everything asked before the connection was condemned has been answered
            self._close(conn.conn_id, conn.close_reason)

    def _record_latency(self, conn: ConnState, latency_ms: int) -> None:
        if latency_ms < 0:
            latency_ms = 0
        _add_latency(conn, latency_ms)
        _add_latency(self.stats, latency_ms)

    def _send(self, conn: ConnState, frame: bytes) -> None:
        conn.sent += 1
        self.stats.packets_sent += 1
        out = conn.out
        if not out:
            self._dirty.append(conn)
        out.append(frame)

    # ------------------------------------------------------------------ reads

    def _read_frame(self, conn: ConnState, xid: int, op: int, record: Any) -> bytes:
        """Run a read against applied state and encode its whole reply frame."""
        zxid = self.state.last_zxid
        if op == OP.ping:
            return encode_reply(XID.PING, zxid, ERR.OK)
        handler = self._reads.get(op)
        if handler is None:
            return encode_reply(xid, zxid, ERR.UNIMPLEMENTED)
        try:
            err, body = handler(conn, record)
        except ZkError as exc:
            return encode_reply(xid, zxid, exc.code)
        if err or body is None:
            return encode_reply(xid, zxid, err)
        return encode_raw_reply(xid, zxid, body)

    def _node_for_read(self, path: str) -> Node:
        """The node at `path`. Reads do not validate paths, as in ZooKeeper 3.8: a malformed
        path is simply not in the tree (NONODE), except the empty path, which ZooKeeper
        answers with MARSHALLINGERROR."""
        node = self.state.nodes.get(path)
        if node is None:
            raise ZkError(ERR.MARSHALLINGERROR if not path else ERR.NONODE, path)
        return node

    def _readable(self, conn: ConnState, path: str) -> Node:
        node = self._node_for_read(path)
        acl = node.acl
        if acl is not _OPEN_ACL_LIST and acl != _OPEN_ACL_LIST:
            acls.require(acl, acls.READ, conn.identities)
        return node

    def _read_exists(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        path = record.path or ""
        node = self.state.nodes.get(path)
        if node is None and (not path or "\0" in path):
            # ZooKeeper 3.8 checks exists() paths for NUL only; "" fails as in every read
            raise ZkError(ERR.BADARGUMENTS if path else ERR.MARSHALLINGERROR, path)
        if record.watch:
            self.watches.add_data_watch(path, conn.conn_id)
        if node is None:
            return ERR.NONODE, None
        return ERR.OK, node.stat_bytes()

    def _read_get_data(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        path = record.path or ""
        node = self._readable(conn, path)
        if record.watch:
            self.watches.add_data_watch(path, conn.conn_id)
        data = node.data
        if data is None:
            return ERR.OK, _NULL_BUFFER + node.stat_bytes()
        return ERR.OK, _LEN.pack(len(data)) + data + node.stat_bytes()

    def _children_bytes(self, conn: ConnState, record: Any) -> tuple[Node, bytes]:
        """The node and its encoded child list (a jute vector of strings). The encoding is
        cached per path and reused while the node and its pzxid and cversion are unchanged:
        every child creation bumps cversion and every child change moves pzxid to a new zxid
        (a failed multi's rollback restores both together with the child set)."""
        path = record.path or ""
        node = self._readable(conn, path)
        if record.watch:
            self.watches.add_child_watch(path, conn.conn_id)
        cached = self._children_cache.get(path)
        if (
            cached is not None
            and cached[0] is node
            and cached[1] == node.pzxid
            and cached[2] == node.cversion
        ):
            return node, cached[3]
        encoded = GetChildrenResponse(list(node.children)).to_bytes()
        if len(self._children_cache) >= _CHILDREN_CACHE_MAX:
            self._children_cache.clear()
        self._children_cache[path] = (node, node.pzxid, node.cversion, encoded)
        return node, encoded

    def _read_get_children(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        return ERR.OK, self._children_bytes(conn, record)[1]

    def _read_get_children2(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        # GetChildren2Response is the child vector followed by the Stat
        node, children = self._children_bytes(conn, record)
        return ERR.OK, children + node.stat_bytes()

    def _read_get_acl(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        path = record.path or ""
        node = self._node_for_read(path)
        acls.require(node.acl, acls.READ | acls.ADMIN, conn.identities)
        acl_list: list[ACL] = node.acl
        if not acls.check(node.acl, acls.ADMIN, conn.identities):
            acl_list = [
                ACL(a.perms, Id("digest", (a.id.id or "").split(":")[0] + ":x"))
                if a.id.scheme == "digest" else a
                for a in acl_list
            ]
        return ERR.OK, GetACLResponse(acl_list, node.stat()).to_bytes()

    def _read_sync(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        return ERR.OK, SyncResponse(record.path).to_bytes()

    def _read_check(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        path = record.path or ""
        validate_path(path)
        node = self._readable(conn, path)
        if record.version != -1 and record.version != node.version:
            return ERR.BADVERSION, None
        return ERR.OK, b""

    def _read_ping(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        return ERR.OK, None

    def _read_all_children_number(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        path = record.path or ""
        validate_path(path)
        self._readable(conn, path)
        total = sum(1 for _ in self.state.descendants(path))
        return ERR.OK, GetAllChildrenNumberResponse(total).to_bytes()

    def _read_ephemerals(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        prefix = record.prefixPath or "/"
        session = self.state.sessions.get(conn.session_id)
        paths = sorted(session.ephemerals) if session is not None else []
        if prefix != "/":
            paths = [p for p in paths if p.startswith(prefix)]
        return ERR.OK, GetEphemeralsResponse(paths).to_bytes()

    def _read_add_watch(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        path = record.path or ""  # not validated: ZooKeeper 3.8 watches any string
        if not path or record.mode not in (WATCH_MODE.PERSISTENT, WATCH_MODE.PERSISTENT_RECURSIVE):
            # ZooKeeper's AddWatchMode.fromMode throws; the server answers MARSHALLINGERROR
            return ERR.MARSHALLINGERROR, None
        recursive = record.mode == WATCH_MODE.PERSISTENT_RECURSIVE
        self.watches.add_persistent(path, conn.conn_id, recursive)
        return ERR.OK, _ERROR_RESPONSE_OK.to_bytes()

    def _watch_tables(self, watcher_type: int) -> list[tuple[Any, tuple[Mode, ...]]]:
        data, child = self.watches.data, self.watches.child
        every = (MODE.STANDARD, MODE.PERSISTENT, MODE.PERSISTENT_RECURSIVE)
        # ZooKeeper 3.8: Children and Data name a table, whatever the watch's mode, so
        # removing the Data part of a persistent watch leaves its children part armed
        tables: dict[int, list[tuple[Any, tuple[Mode, ...]]]] = {
            1: [(child, every)],
            2: [(data, every)],
            3: [(data, every), (child, every)],
            4: [(data, (MODE.PERSISTENT,)), (child, (MODE.PERSISTENT,))],
            5: [(data, (MODE.PERSISTENT_RECURSIVE,))],
        }
        if watcher_type not in tables:
            # ZooKeeper's WATCHER_TYPE.fromInt throws; the server answers MARSHALLINGERROR
            raise ZkError(ERR.MARSHALLINGERROR, f"unknown watcher type {watcher_type}")
        return tables[watcher_type]

    def _read_check_watches(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        found = any(
            table.by_path.get(record.path or "", {}).get(conn.conn_id) in modes
            for table, modes in self._watch_tables(record.type)
        )
        return (ERR.OK, None) if found else (ERR.NOWATCHER, None)

    def _read_remove_watches(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        removed = False
        path = record.path or ""
        for table, modes in self._watch_tables(record.type):
            if table.by_path.get(path, {}).get(conn.conn_id) in modes:
                removed |= table.remove(path, conn.conn_id)
        return (ERR.OK, None) if removed else (ERR.NOWATCHER, None)

    def _read_set_watches(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        """Re-arm watches after a reconnect, firing at once what changed since relativeZxid."""
        relative = record.relativeZxid
        nodes = self.state.nodes
        watcher = conn.conn_id
        events: list[tuple[int, str]] = []
        for path in record.dataWatches or ():
            node = nodes.get(path)
            if node is None:
                events.append((EVENT.NodeDeleted, path))
            elif node.mzxid > relative:
                events.append((EVENT.NodeDataChanged, path))
            else:
                self.watches.add_data_watch(path, watcher)
        for path in record.existWatches or ():
            if path in nodes:
                events.append((EVENT.NodeCreated, path))
            else:
                self.watches.add_data_watch(path, watcher)
        for path in record.childWatches or ():
            node = nodes.get(path)
            if node is None:
                events.append((EVENT.NodeDeleted, path))
            elif node.pzxid > relative:
                events.append((EVENT.NodeChildrenChanged, path))
            else:
                self.watches.add_child_watch(path, watcher)
        for path in getattr(record, "persistentWatches", None) or ():
            self.watches.add_persistent(path, watcher, recursive=False)
        for path in getattr(record, "persistentRecursiveWatches", None) or ():
            self.watches.add_persistent(path, watcher, recursive=True)
        for event, path in events:
            self._send(conn, encode_event(event, STATE.SyncConnected, path))
        return ERR.OK, None

    def _read_who_am_i(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        # a digest identity is shown by its user name only, as ZooKeeper's provider does
        infos = [
            ClientInfo(s, i.split(":", 1)[0] if s == "digest" else i)
            for s, i in _java_hash_set_order(conn.identities)
            if (s, i) != acls.SUPER_IDENTITY
        ]
        return ERR.OK, WhoAmIResponse(infos).to_bytes()

    def _read_reconfig(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        return ERR.RECONFIGDISABLED, None

    def _read_multi(self, conn: ConnState, record: Any) -> tuple[int, bytes | None]:
        if isinstance(record, MisplacedOp):
            return ERR.MARSHALLINGERROR, None
        rows: list[tuple[int, int, Any]] = []
        for op, sub in record:
            try:
                if op == OP.getData:
                    node = self._readable(conn, sub.path or "")
                    if sub.watch:
                        self.watches.add_data_watch(sub.path or "", conn.conn_id)
                    rows.append((op, 0, GetDataResponse(node.data, node.stat())))
                else:
                    node = self._readable(conn, sub.path or "")
                    if sub.watch:
                        self.watches.add_child_watch(sub.path or "", conn.conn_id)
                    rows.append((op, 0, GetChildrenResponse(list(node.children))))
            except ZkError as err:
                rows.append((op, err.code, None))
        return ERR.OK, encode_multi_body(rows)


def _encode_failed_multi(rows: list[tuple[int, int, Any]]) -> bytes:
    """A failed multi: every op is an error result (0 before the failure, -2 after)."""
    out = bytearray()
    for _op, err, _ in rows:
        MultiHeader(-1, False, err).write(out)
        ErrorResponse(err).write(out)
    MultiHeader(-1, True, -1).write(out)
    return bytes(out)


_OP_ABBREVIATIONS: dict[int, str] = {
    OP.create: "CREA", OP.create2: "CREA", OP.createContainer: "CREA",
    OP.createTTL: "CREA", OP.delete: "DELE", OP.exists: "EXIS",
    OP.getData: "GETD", OP.setData: "SETD", OP.getACL: "GACL",
    OP.setACL: "SACL", OP.getChildren: "GETC", OP.getChildren2: "GETC",
    OP.sync: "SYNC", OP.ping: "PING", OP.multi: "MULT", OP.multiRead: "MLTR",
    OP.closeSession: "CLOS", OP.check: "CHEC", OP.addWatch: "ADDW",
    OP.setWatches: "SETW", OP.setWatches2: "SETW", OP.removeWatches: "REMW",
    OP.checkWatches: "CHKW", OP.whoAmI: "HOMI", OP.getEphemerals: "GETE",
    OP.getAllChildrenNumber: "GETACN",
}
