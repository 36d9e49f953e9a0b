"""ZooKeeper's error codes (`KeeperException.Code` in 3.8), one to one, and `ZkError`.

A `ZkError` is an outcome the client sees as the `err` field of a reply header. Only codes in
`Code` are ever put on the wire: the Java client fails on codes it does not know.
"""

from __future__ import annotations

from enum import IntEnum

from zoolog.protocol.zk.opcodes import plain_ints


class Code(IntEnum):
    OK = 0
    SYSTEMERROR = -1
    RUNTIMEINCONSISTENCY = -2
    DATAINCONSISTENCY = -3
    CONNECTIONLOSS = -4
    MARSHALLINGERROR = -5
    UNIMPLEMENTED = -6
    OPERATIONTIMEOUT = -7
    BADARGUMENTS = -8
    UNKNOWNSESSION = -12
    NEWCONFIGNOQUORUM = -13
    RECONFIGINPROGRESS = -14
    APIERROR = -100
    NONODE = -101
    NOAUTH = -102
    BADVERSION = -103
    NOCHILDRENFOREPHEMERALS = -108
    NODEEXISTS = -110
    NOTEMPTY = -111
    SESSIONEXPIRED = -112
    INVALIDCALLBACK = -113
    INVALIDACL = -114
    AUTHFAILED = -115
    SESSIONMOVED = -118
    NOTREADONLY = -119
    EPHEMERALONLOCALSESSION = -120
    NOWATCHER = -121
    REQUESTTIMEOUT = -122
    RECONFIGDISABLED = -123
    SESSIONCLOSEDREQUIRESASLAUTH = -124
    QUOTAEXCEEDED = -125
    THROTTLEDOP = -127


class ZkError(Exception):
    """A request failed with ZooKeeper error `code`; `detail` is for logs, never the wire."""

    def __init__(self, code: Code, detail: str = "") -> None:
        code = Code(code)  # hot paths raise with plain ints (ERR.*): name them here
        super().__init__(f"{code.name}: {detail}" if detail else code.name)
        self.code = code
        self.detail = detail


ERR = plain_ints(Code)
"""`Code` as plain ints, for hot paths (see `plain_ints`)."""
