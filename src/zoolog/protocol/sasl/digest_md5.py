"""The server side of SASL DIGEST-MD5 (RFC 2831), authentication only (qop=auth), sans-I/O.

ZooKeeper's DIGEST-MD5 exchange, as Apache ZooKeeper 3.8 (Java's DigestMD5Server) runs it:

    client: empty token
    server: realm="zk-sasl-md5",nonce="...",charset=utf-8,algorithm=md5-sess
    client: username="bob",realm="zk-sasl-md5",nonce="...",cnonce="...",nc=00000001,
            qop=auth,digest-uri="zookeeper/zk-sasl-md5",response=<32 hex>
    server: rspauth=<32 hex>                                  (authenticated: complete)

The challenge names no qop, which means "auth" (RFC 2831 2.1.1); integrity and confidentiality
layers are not offered, so a client asking for them is refused. The authenticated identity is
the user name, whatever authorization id the client names, as ZooKeeper's server callback
handler decides.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

REALM = "zk-sasl-md5"
"""The realm and server name ZooKeeper uses for DIGEST-MD5 (its clients hard-code it)."""
PROTOCOL = "zookeeper"


class SaslError(Exception):
    """The client's token is malformed or its proof is wrong: authentication failed."""


def parse_directives(text: str) -> dict[str, str]:
    """`a=token,b="quoted \\" string"` -> {"a": "token", "b": 'quoted " string'} (RFC 2831
    digest-challenge / digest-response syntax, with its implied LWS and empty list elements).
    A directive given twice is an error, as the RFC requires of every directive it defines."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0:
            raise SaslError(f"DIGEST-MD5: directive without a value at {text[i:]!r}")
        key = text[i:eq].strip().lower()
        if not key:
            raise SaslError("DIGEST-MD5: empty directive name")
        if any(ch in key for ch in ' \t\r\n,;"'):
            raise SaslError(f"DIGEST-MD5: directive without a value at {text[i:eq]!r}")
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            value: list[str] = []
            while True:
                if i >= n:
                    raise SaslError(f"DIGEST-MD5: unterminated quoted value of {key}")
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    value.append(text[i + 1])
                    i += 2
                elif ch == '"':
                    i += 1
                    break
                else:
                    value.append(ch)
                    i += 1
            parsed = "".join(value)
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            parsed = text[i:end].strip()
            i = end
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] != ",":
            raise SaslError(f"DIGEST-MD5: expected ',' after {key}")
        if key in out:
            raise SaslError(f"DIGEST-MD5: directive {key} given twice")
        out[key] = parsed
    return out


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text_bytes(value: str, utf8: bool) -> bytes:
    """RFC 2831 2.1.2.1: with charset=utf-8, values that fit ISO 8859-1 are hashed in it."""
    if not utf8:
        return value.encode("latin-1")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _hex_md5(data: bytes) -> bytes:
    return hashlib.md5(data).hexdigest().encode("ascii")


def response_value(
    *, username: str, realm: str, password: str, nonce: str, cnonce: str, nc: str, qop: str,
    digest_uri: str, authzid: str | None, utf8: bool, a2_prefix: str,
) -> str:
    """The `response` (a2_prefix "AUTHENTICATE") or `rspauth` (a2_prefix "") value."""
    secret = hashlib.md5(
        b":".join((_text_bytes(username, utf8), _text_bytes(realm, utf8),
                   _text_bytes(password, utf8)))
    ).digest()
    a1 = secret + b":" + nonce.encode("utf-8") + b":" + cnonce.encode("utf-8")
    if authzid:
        a1 += b":" + authzid.encode("utf-8")
    a2 = f"{a2_prefix}:{digest_uri}".encode()
    kd = b":".join((_hex_md5(a1), nonce.encode("utf-8"), nc.encode("ascii"),
                    cnonce.encode("utf-8"), qop.encode("ascii"), _hex_md5(a2)))
    return _hex_md5(kd).decode("ascii")


class DigestMd5Server:
    """One connection's DIGEST-MD5 negotiation: feed each client token to `evaluate`, send back
    what it returns; `complete` and `authorization_id` once the client has proven its password.
    Any SaslError means authentication failed (the caller answers and closes)."""

    def __init__(self, password_of: Callable[[str], str | None], nonce: str,
                 realm: str = REALM, protocol: str = PROTOCOL) -> None:
        self._password_of = password_of
        self._nonce = nonce
        self._realm = realm
        self._digest_uri = f"{protocol}/{realm}"
        self._step = 0
        self.complete = False
        self.authorization_id: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise SaslError("DIGEST-MD5: authentication already complete")
        if self._step == 0:
            if token:
                raise SaslError("DIGEST-MD5 has no initial response: expected an empty token")
            self._step = 1
            return (f"realm={_quote(self._realm)},nonce={_quote(self._nonce)},"
                    "charset=utf-8,algorithm=md5-sess").encode("ascii")
        self._step = 2
        return self._verify(token)

    def _verify(self, token: bytes) -> bytes:
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SaslError("DIGEST-MD5: response is not UTF-8") from exc
        fields = parse_directives(text)
        if "charset" in fields and fields["charset"].lower() != "utf-8":
            raise SaslError(f"DIGEST-MD5: unsupported charset {fields['charset']!r}")
        # the challenge offered charset=utf-8, so values are hashed by its rule whether or not
        # the client echoes it (as Java's server does; pure-sasl never echoes it)
        utf8 = True
        for required in ("username", "nonce", "cnonce", "nc", "digest-uri", "response"):
            if required not in fields:
                raise SaslError(f"DIGEST-MD5: response has no {required}")
        qop = fields.get("qop", "auth")
        if qop != "auth":
            raise SaslError(f"DIGEST-MD5: qop {qop!r} was not offered (only auth)")
        if fields["nonce"] != self._nonce:
            raise SaslError("DIGEST-MD5: nonce does not match the challenge")
        if fields["nc"] != "00000001":
            raise SaslError(f"DIGEST-MD5: nonce count must be 00000001, not {fields['nc']!r}")
        realm = fields.get("realm")
        if realm is None:  # the challenge named one, so the response must (as Java requires)
            raise SaslError("DIGEST-MD5: response has no realm")
        if realm != self._realm:
            raise SaslError(f"DIGEST-MD5: unknown realm {realm!r}")
        if fields["digest-uri"] != self._digest_uri:
            raise SaslError(f"DIGEST-MD5: digest-uri {fields['digest-uri']!r} is not "
                            f"{self._digest_uri!r}")
        username = fields["username"]
        password = self._password_of(username)
        if password is None:
            raise SaslError(f"DIGEST-MD5: no password for user {username!r}")
        def value(a2_prefix: str) -> str:
            return response_value(
                username=username, realm=realm, password=password, nonce=self._nonce,
                cnonce=fields["cnonce"], nc=fields["nc"], qop=qop,
                digest_uri=fields["digest-uri"], authzid=fields.get("authzid"), utf8=utf8,
                a2_prefix=a2_prefix,
            )

        if not hmac.compare_digest(value("AUTHENTICATE"), fields["response"].lower()):
            raise SaslError(f"DIGEST-MD5: wrong password for user {username!r}")
        self.complete = True
        self.authorization_id = username
        rspauth = value("")
        return f"rspauth={rspauth}".encode("ascii")


class DigestMd5Client:
    """The client side, for zoolog's own ZooKeeper client: `respond(challenge)` gives the
    digest-response, `verify(rspauth_token)` checks the server's proof of the password."""

    def __init__(self, username: str, password: str, cnonce: str,
                 realm: str = REALM, protocol: str = PROTOCOL) -> None:
        self._username = username
        self._password = password
        self._cnonce = cnonce
        self._digest_uri = f"{protocol}/{realm}"
        self._default_realm = realm
        self._expected_rspauth: str | None = None
        self.complete = False

    def respond(self, challenge: bytes) -> bytes:
        fields = parse_directives(challenge.decode("utf-8"))
        if "nonce" not in fields:
            raise SaslError("DIGEST-MD5: challenge has no nonce")
        if "auth" not in fields.get("qop", "auth").split(","):
            raise SaslError(f"DIGEST-MD5: the server offers no qop=auth ({fields['qop']!r})")
        realm = fields.get("realm", self._default_realm)
        nonce = fields["nonce"]

        def value(a2_prefix: str) -> str:
            return response_value(
                username=self._username, realm=realm, password=self._password, nonce=nonce,
                cnonce=self._cnonce, nc="00000001", qop="auth", digest_uri=self._digest_uri,
                authzid=None, utf8=True, a2_prefix=a2_prefix,
            )

        self._expected_rspauth = value("")
        return ",".join([
            "charset=utf-8", f"username={_quote(self._username)}", f"realm={_quote(realm)}",
            f"nonce={_quote(nonce)}", "nc=00000001", f"cnonce={_quote(self._cnonce)}",
            f"digest-uri={_quote(self._digest_uri)}", "qop=auth",
            f"response={value('AUTHENTICATE')}",
        ]).encode("utf-8")

    def verify(self, token: bytes) -> None:
        fields = parse_directives(token.decode("utf-8"))
        if self._expected_rspauth is None or not hmac.compare_digest(
            fields.get("rspauth", "").lower(), self._expected_rspauth
        ):
            raise SaslError("DIGEST-MD5: the server's rspauth does not prove it knows the "
                            "password")
        self.complete = True
