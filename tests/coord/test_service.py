"""CoordService without sockets: ordering guarantees as values in its output."""

from __future__ import annotations

from zoolog.coord.acl import OPEN_ACL_UNSAFE
from zoolog.coord.datatree import CoordState
from zoolog.coord.service import CoordService, Proposal, ServiceConfig
from zoolog.protocol.zk._generated.jute_records import (
    ConnectRequest,
    CreateRequest,
    GetDataRequest,
    ReplyHeader,
    SetDataRequest,
)
from zoolog.protocol.zk.opcodes import OpCode

NOW = 1_000_000


def frame_xids(data: bytes) -> list[int]:
    """The reply xids of the whole frames in `data`, in order."""
    xids, pos = [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        xids.append(ReplyHeader.read(data, pos + 4)[0].xid)
        pos += 4 + length
    return xids


class Harness:
    def __init__(self) -> None:
        self.service = CoordService(CoordState(), ServiceConfig(), NOW)
        self.zxid = 0
        self.proposals: list[Proposal] = []
        self.sent: list[tuple[int, int]] = []  # (conn, xid) in send order

    def pump(self, commit: bool = True) -> None:
        output = self.service.take_output()
        for proposal in output.proposals:
            self.zxid += 1
            proposal[0].zxid = self.zxid
            self.proposals.append(proposal)
        for conn_id, data in output.sends:
            self.sent.extend((conn_id, xid) for xid in frame_xids(data))
        if commit:
            self.commit_all()

    def commit_all(self) -> None:
        while self.proposals:
            txn, conn_id, pending = self.proposals.pop(0)
            self.service.committed(txn, conn_id, pending, NOW)
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
    [reply] = [data for conn_id, data in h.service.take_output().sends if conn_id == 2]
    assert ReplyHeader.read(reply, 4)[0].err == -101  # not visible until durable
