"""CoordService without sockets: ordering guarantees as values in the outbox."""

from __future__ import annotations

from zoolog.coord.acl import OPEN_ACL_UNSAFE
from zoolog.coord.datatree import CoordState
from zoolog.coord.service import Close, CoordService, Propose, Send, ServiceConfig
from zoolog.protocol.zk._generated.jute_records import (
    ConnectRequest,
    CreateRequest,
    GetDataRequest,
    ReplyHeader,
    SetDataRequest,
)
from zoolog.protocol.zk.opcodes import OpCode

NOW = 1_000_000


class Harness:
    def __init__(self) -> None:
        self.service = CoordService(CoordState(), ServiceConfig(), NOW)
        self.zxid = 0
        self.proposals: list[Propose] = []
        self.sent: list[tuple[int, int]] = []  # (conn, xid) in send order

    def pump(self, commit: bool = True) -> None:
        outbox, self.service.outbox = self.service.outbox, []
        for item in outbox:
            if isinstance(item, Propose):
                self.zxid += 1
                item.txn.zxid = self.zxid
                self.proposals.append(item)
            elif isinstance(item, Send):
                header, _ = ReplyHeader.read(item.frame, 4)
                self.sent.append((item.conn_id, header.xid))
            else:
                assert isinstance(item, Close)
        if commit:
            self.commit_all()

    def commit_all(self) -> None:
        while self.proposals:
            proposal = self.proposals.pop(0)
            self.service.committed(proposal.txn, proposal.token, NOW)
            self.pump(commit=False)

    def session(self, conn: int) -> None:
        self.service.open(conn, ("127.0.0.1", 5000 + conn), NOW)
        self.service.connect(conn, ConnectRequest(0, 0, 10_000, 0, bytes(16), False), True, NOW)
        self.pump()
        self.sent.clear()


def test_a_read_waits_for_the_writes_its_connection_sent_before_it() -> None:
    h = Harness()
    h.session(1)
    h.service.request(1, 1, OpCode.create, CreateRequest("/x", b"1", list(OPEN_ACL_UNSAFE), 0),
                      NOW)
    h.service.request(1, 2, OpCode.getData, GetDataRequest("/x", False), NOW)
    h.pump(commit=False)
    assert h.sent == []  # nothing may overtake the uncommitted create
    h.commit_all()
    assert h.sent == [(1, 1), (1, 2)]


def test_watch_event_goes_out_before_the_reply_that_caused_it() -> None:
    h = Harness()
    h.session(1)
    h.session(2)
    h.service.request(1, 1, OpCode.create, CreateRequest("/w", b"", list(OPEN_ACL_UNSAFE), 0),
                      NOW)
    h.pump()
    h.service.request(1, 2, OpCode.getData, GetDataRequest("/w", True), NOW)
    h.service.request(2, 1, OpCode.getData, GetDataRequest("/w", True), NOW)
    h.pump()
    h.sent.clear()
    h.service.request(1, 3, OpCode.setData, SetDataRequest("/w", b"new", -1), NOW)
    h.pump()
    # the notification (xid -1) reaches the writer before its own reply; the other watcher too
    assert h.sent.index((1, -1)) < h.sent.index((1, 3))
    assert (2, -1) in h.sent


def test_reads_of_other_connections_do_not_see_unsynced_writes() -> None:
    h = Harness()
    h.session(1)
    h.session(2)
    h.service.request(1, 1, OpCode.create, CreateRequest("/u", b"", list(OPEN_ACL_UNSAFE), 0),
                      NOW)
    h.pump(commit=False)
    h.service.request(2, 1, OpCode.getData, GetDataRequest("/u", False), NOW)
    outbox = h.service.outbox
    [reply] = [item for item in outbox if isinstance(item, Send) and item.conn_id == 2]
    assert ReplyHeader.read(reply.frame, 4)[0].err == -101  # not visible until durable
