"""The hand-off between the client front (sockets, framing, decoding) and the core (the
coordination service): events up, commands down, as plain tuples.

The front and the core may run in one process or in two (the front in its own process, so
framing and jute decoding use the second core). Either way they speak only this vocabulary of
tuples of ints, strings, bytes and lists, which `marshal` carries between processes in one C
call per batch — an order of magnitude cheaper than pickling record objects.

Events, front -> core (`conn_id` is the front's number for the client connection):

    (EV_OPEN, conn_id, host, port, x509)           a client connected (x509: the subject of
                                                   its TLS certificate, or None)
    (EV_LOST, conn_id)                             it is gone (last event for conn_id)
    (EV_REQUEST, conn_id, xid, op, plain_record, body)
                                                   a decoded request (see `plain_request`) and
                                                   `Request.body` (bytes or None)
    (EV_CONNECT, conn_id, plain_connect_request, readonly_byte_present)
    (EV_UNKNOWN, conn_id, xid, op)                 a request with an opcode nobody knows
    (EV_FOUR_LETTER_WORD, conn_id, word)
    (EV_FRONT_READY, 0)                            the front accepts clients (a process
                                                   front's first message)

Commands, core -> front:

    (CMD_SEND, conn_id, data)     write these bytes (whole frames, possibly several)
    (CMD_CLOSE, conn_id)          close after everything sent before it is written
    (CMD_PAUSE, conn_id)          stop reading from this client (backpressure)
    (CMD_RESUME, conn_id)

Records travel as the tuple of their fields; ACL lists (the only nested records a client can
send) as lists of (perms, scheme, id). A multi travels as a list of (op, fields), a misplaced
op inside one as the bare opcode. The conversion is exact: `record_from_plain(op,
plain_request(op, r)) == r` for every request record (tested for all of them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import Any, cast

from zoolog.protocol.zk._generated.jute_records import ACL, ConnectRequest, Id
from zoolog.protocol.zk.connection import REQUEST_RECORDS, MisplacedOp
from zoolog.protocol.zk.opcodes import OpCode

EV_OPEN = 0
EV_LOST = 1
EV_REQUEST = 2
EV_CONNECT = 3
EV_UNKNOWN = 4
EV_FOUR_LETTER_WORD = 5
EV_FRONT_READY = 6

CMD_SEND = 0
CMD_CLOSE = 1
CMD_PAUSE = 2
CMD_RESUME = 3

_MULTI_OPS = (int(OpCode.multi), int(OpCode.multiRead))

Plain = Any


def _acls_to_plain(acl: list[ACL] | None) -> list[tuple[int, str | None, str | None]] | None:
    if acl is None:
        return None
    return [(entry.perms, entry.id.scheme, entry.id.id) for entry in acl]


_INTERNED_ACLS: dict[tuple[tuple[int, str | None, str | None], ...], list[ACL]] = {}
INTERNED_ACLS_MAX = 4096


def _acls_from_plain(rows: list[tuple[int, str | None, str | None]] | None) -> list[ACL] | None:
    """Equal ACL lists come back as one list object: clients send the same few ACLs with every
    create, and the core remembers work done per list (fixup, encoding). ACL lists are values
    in zoolog: nothing mutates one after it is built."""
    if rows is None:
        return None
    key = tuple(rows)
    acl = _INTERNED_ACLS.get(key)
    if acl is None:
        acl = [ACL(perms, Id(scheme, ident)) for perms, scheme, ident in rows]
        if len(_INTERNED_ACLS) >= INTERNED_ACLS_MAX:
            _INTERNED_ACLS.clear()
        _INTERNED_ACLS[key] = acl
    return acl


def _converters(cls: type) -> tuple[Callable[[Any], tuple[Any, ...]], Callable[[Any], Any]]:
    """(record -> plain tuple, plain tuple -> record) for one request record class."""
    names = [f.name for f in dataclasses.fields(cls)]
    if "acl" not in names:
        to_plain: Callable[[Any], tuple[Any, ...]]
        if len(names) == 1:
            get_only = attrgetter(names[0])

            def one_field(record: Any) -> tuple[Any, ...]:
                return (get_only(record),)

            to_plain = one_field
        else:
            to_plain = cast(Callable[[Any], tuple[Any, ...]], attrgetter(*names))  # in C

        def from_plain(fields: Any) -> Any:
            return cls(*fields)

        return to_plain, from_plain
    at = names.index("acl")

    def acl_to_plain(record: Any) -> tuple[Any, ...]:
        values = [getattr(record, name) for name in names]
        values[at] = _acls_to_plain(values[at])
        return tuple(values)

    def acl_from_plain(fields: Any) -> Any:
        values = list(fields)
        values[at] = _acls_from_plain(values[at])
        return cls(*values)

    return acl_to_plain, acl_from_plain


_TO_PLAIN: dict[int, Callable[[Any], tuple[Any, ...]]] = {}
_FROM_PLAIN: dict[int, Callable[[Any], Any]] = {}
for _op, _cls in REQUEST_RECORDS.items():
    if _cls is not None:
        _TO_PLAIN[int(_op)], _FROM_PLAIN[int(_op)] = _converters(_cls)
_CONNECT_TO_PLAIN, _CONNECT_FROM_PLAIN = _converters(ConnectRequest)


def plain_request(op: int, record: Any) -> Plain:
    """The plain form of a decoded request's record (what `Request.record` holds)."""
    if record is None:
        return None
    if op in _MULTI_OPS:
        if isinstance(record, MisplacedOp):
            return record.op
        return [(sub_op, _TO_PLAIN[sub_op](sub)) for sub_op, sub in record]
    return _TO_PLAIN[op](record)


def record_from_plain(op: int, plain: Plain) -> Any:
    """The inverse of `plain_request`."""
    if plain is None:
        return None
    if op in _MULTI_OPS:
        if type(plain) is int:
            return MisplacedOp(plain)
        return [(sub_op, _FROM_PLAIN[sub_op](fields)) for sub_op, fields in plain]
    return _FROM_PLAIN[op](plain)


def plain_connect(request: ConnectRequest) -> Plain:
    return _CONNECT_TO_PLAIN(request)


def connect_from_plain(plain: Plain) -> ConnectRequest:
    request: ConnectRequest = _CONNECT_FROM_PLAIN(plain)
    return request
