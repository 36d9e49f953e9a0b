"""Access control: ACL matching, the digest scheme, and `auth`-scheme expansion.

An identity is a `(scheme, id)` pair a connection has proven: every connection has
`("ip", peer_address)`; `addauth digest user:pw` adds `("digest", "user:<base64 sha1>")`, a
SASL DIGEST-MD5 login `("sasl", user)`, a TLS client certificate `("x509", subject DN)`; the
configured super user gets `SUPER_IDENTITY`, which passes every check. Identities travel
inside each write txn so that `apply` checks permissions deterministically on every replica.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import struct
from collections.abc import Hashable, Iterable, Sequence
from typing import Generic, TypeVar

from zoolog.coord.errors import ERR, ZkError
from zoolog.protocol.zk._generated.jute_records import ACL, Id

READ = 1
WRITE = 2
CREATE = 4
DELETE = 8
ADMIN = 16
ALL = 31

SUPER_IDENTITY = ("super", "")

_KERBEROS_NAME = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")
"""A principal as ZooKeeper's KerberosName parses it; a sasl id with no `@` is a plain name."""

OPEN_ACL_UNSAFE: tuple[ACL, ...] = (ACL(perms=ALL, id=Id(scheme="world", id="anyone")),)

Identity = tuple[str, str]
T = TypeVar("T")


def digest_id(user_password: str) -> str:
    """`user:password` -> `user:base64(sha1("user:password"))`, ZooKeeper's digest id."""
    user = user_password.split(":", 1)[0]
    digest = base64.b64encode(hashlib.sha1(user_password.encode("utf-8")).digest())
    return f"{user}:{digest.decode('ascii')}"


def _ip_matches(pattern: str, address: str) -> bool:
    try:
        network = ipaddress.ip_network(pattern, strict=False)
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False


def _id_matches(acl_id: Id, identity: Identity) -> bool:
    scheme, ident = identity
    if acl_id.scheme != scheme:
        return False
    if scheme == "ip":
        return _ip_matches(acl_id.id or "", ident)
    return acl_id.id == ident


def check(acls: Sequence[ACL], perm: int, identities: Iterable[Identity]) -> bool:
    """True if one of `identities` is granted `perm` by `acls` (ZooKeeper's checkACL)."""
    for acl in acls:  # the common case first: world:anyone holds the permission
        if acl.perms & perm:
            acl_id = acl.id
            if acl_id.scheme == "world" and acl_id.id == "anyone":
                return True
    ids = tuple(identities)
    if SUPER_IDENTITY in ids or not acls:
        return True
    for acl in acls:
        if acl.perms & perm:
            for identity in ids:
                if _id_matches(acl.id, identity):
                    return True
    return False


def require(acls: Sequence[ACL], perm: int, identities: Iterable[Identity]) -> None:
    if not check(acls, perm, identities):
        raise ZkError(ERR.NOAUTH, "insufficient permissions")


class PerList(Generic[T]):
    """Results remembered per ACL list object. ACL lists are values in zoolog (never mutated
    once built) and clients send the same few with every create (the hand-off makes equal ones
    one object), so work on a list is done once. An entry holds its list, so the list's id
    stays its own while remembered; the table is emptied when full."""

    def __init__(self, entries_max: int = 4096) -> None:
        self.entries_max = entries_max
        self._entries: dict[tuple[int, Hashable], tuple[object, T]] = {}

    def get(self, acls: object, extra: Hashable = None) -> T | None:
        known = self._entries.get((id(acls), extra))
        return known[1] if known is not None and known[0] is acls else None

    def put(self, acls: object, extra: Hashable, result: T) -> T:
        if len(self._entries) >= self.entries_max:
            self._entries.clear()
        self._entries[(id(acls), extra)] = (acls, result)
        return result


_FIXED: PerList[list[ACL]] = PerList()
_VECTORS: PerList[bytes] = PerList()
_MINUS_ONE = struct.pack(">i", -1)


def fixup(acls: Sequence[ACL] | None, identities: tuple[Identity, ...]) -> list[ACL]:
    """Validate a client-supplied ACL list and expand `auth` entries (ZooKeeper's fixupACL).

    Empty lists, unknown schemes, malformed ids and `auth` entries on a session with no
    authenticated identity are INVALIDACL.

    A list that needs no change comes back as itself. The result is remembered per list and
    identities (`PerList`) and shared by every node created with it: it is a value too.
    """
    if acls is None:
        return _fixup(acls, identities)
    known = _FIXED.get(acls, identities)
    if known is not None:
        return known
    fixed = _fixup(acls, identities)
    if fixed == acls and type(acls) is list:
        fixed = acls
    return _FIXED.put(acls, identities, fixed)


def vector_bytes(acls: list[ACL] | None) -> bytes:
    """The jute `vector<ACL>` encoding of a list (txn log, snapshots), once per list."""
    known = _VECTORS.get(acls)
    if known is not None:
        return known
    if acls is None:
        return _MINUS_ONE
    out = bytearray(struct.pack(">i", len(acls)))
    for acl in acls:
        acl.write(out)
    return _VECTORS.put(acls, None, bytes(out))


def _fixup(acls: Sequence[ACL] | None, identities: tuple[Identity, ...]) -> list[ACL]:
    if not acls:
        raise ZkError(ERR.INVALIDACL, "ACL list must not be empty")
    authed = [i for i in identities if i[0] not in ("ip", "super")]
    out: list[ACL] = []
    for acl in acls:
        scheme = acl.id.scheme or ""
        ident = acl.id.id or ""
        # ZooKeeper 3.8 stores any perms value as given (bits outside cdrwa grant nothing)
        if scheme == "world":
            if ident != "anyone":
                raise ZkError(ERR.INVALIDACL, f"world id must be anyone, not {ident!r}")
            out.append(ACL(perms=acl.perms, id=Id(scheme="world", id="anyone")))
        elif scheme == "auth":
            if not authed:
                raise ZkError(ERR.INVALIDACL, "auth scheme needs an authenticated session")
            for s, i in authed:
                entry = ACL(perms=acl.perms, id=Id(scheme=s, id=i))
                if entry not in out:
                    out.append(entry)
        elif scheme == "digest":
            if ident.count(":") != 1 or not ident.split(":")[0]:
                raise ZkError(ERR.INVALIDACL, f"digest id must be user:hash, not {ident!r}")
            out.append(ACL(perms=acl.perms, id=Id(scheme="digest", id=ident)))
        elif scheme == "ip":
            try:
                ipaddress.ip_network(ident, strict=False)
            except ValueError as exc:
                raise ZkError(ERR.INVALIDACL, f"bad ip id {ident!r}") from exc
            out.append(ACL(perms=acl.perms, id=Id(scheme="ip", id=ident)))
        elif scheme == "sasl":
            if "@" in ident and _KERBEROS_NAME.fullmatch(ident) is None:
                # ZooKeeper's SASL provider accepts what parses as a Kerberos principal
                raise ZkError(ERR.INVALIDACL, f"sasl id {ident!r} is not a Kerberos name "
                                              "(name[/host]@REALM)")
            out.append(ACL(perms=acl.perms, id=Id(scheme=scheme, id=ident)))
        elif scheme == "x509":
            out.append(ACL(perms=acl.perms, id=Id(scheme=scheme, id=ident)))
        else:
            raise ZkError(ERR.INVALIDACL, f"unknown ACL scheme {scheme!r}")
    return _without_duplicates(out)


def _without_duplicates(acls: list[ACL]) -> list[ACL]:
    """Drop repeated entries, keeping the first of each (ZooKeeper's removeDuplicates)."""
    seen: set[tuple[int, str, str]] = set()
    out: list[ACL] = []
    for acl in acls:
        key = (acl.perms, acl.id.scheme or "", acl.id.id or "")
        if key not in seen:
            seen.add(key)
            out.append(acl)
    return out
