"""TLS on the ZooKeeper client port (`secureClientPort`), configured with ZooKeeper's `ssl.*`
keys, and the `x509` identity a client certificate gives.

Key and trust stores are PEM files, as ZooKeeper 3.8 reads them with `ssl.keyStore.type=PEM`:
the key store holds the private key (PKCS#8, encrypted with `ssl.keyStore.password` or not)
and the certificate chain; the trust store holds the CA certificates that client certificates
must chain to (the system's CAs when none is given). `ssl.clientAuth` is `need` (ZooKeeper's
default: a client must present a trusted certificate), `want` (checked if presented) or
`none`.

A client certificate's identity is its subject DN as Java's X500Principal prints it in RFC
2253 form, `CN=bob,OU=ops,O=Acme\\, Inc.,C=US` (last RDN first, attribute types other than CN,
C, L, ST, O, OU, STREET, DC and UID as their OID with the value's DER in hex): what operators
write in `x509:` ACLs for ZooKeeper.
"""

from __future__ import annotations

import argparse
import ssl
from dataclasses import dataclass
from pathlib import Path

from zoolog.errors import ConfigError

CLIENT_AUTH = {"none": ssl.CERT_NONE, "want": ssl.CERT_OPTIONAL, "need": ssl.CERT_REQUIRED}

_PROTOCOLS = {
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


@dataclass(frozen=True)
class TlsSettings:
    key_store: Path
    key_store_password: str | None = None
    trust_store: Path | None = None
    client_auth: str = "need"
    protocols: tuple[str, ...] = ()
    """TLS versions to allow (`ssl.enabledProtocols`, or `ssl.protocol` alone); empty: TLS 1.2
    and 1.3 (ZooKeeper 3.8 offers only TLSv1.2 unless told otherwise)."""

    def as_args(self) -> list[str]:
        """The settings as command-line arguments of the front process (all but the key
        store's password, which goes in its environment: others can read a command line)."""
        args = ["--tls-key-store", str(self.key_store), "--tls-client-auth", self.client_auth]
        if self.trust_store is not None:
            args += ["--tls-trust-store", str(self.trust_store)]
        for protocol in self.protocols:
            args += ["--tls-protocol", protocol]
        return args

    @classmethod
    def from_args(cls, args: argparse.Namespace, key_store_password: str | None
                  ) -> TlsSettings:
        """The inverse of `as_args`, from a parser `add_arguments` set up."""
        return cls(Path(args.tls_key_store), key_store_password,
                   Path(args.tls_trust_store) if args.tls_trust_store else None,
                   args.tls_client_auth, tuple(args.tls_protocol))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The front process's options that `TlsSettings.as_args` fills in."""
    parser.add_argument("--tls-key-store", help="PEM key and certificate chain")
    parser.add_argument("--tls-trust-store", help="PEM CA certificates")
    parser.add_argument("--tls-client-auth", default="need")
    parser.add_argument("--tls-protocol", action="append", default=[])


def store_type(location: Path, declared: str | None, key: str) -> None:
    """Refuse key and trust store types other than PEM, as ZooKeeper infers or is told them."""
    kind = (declared or "").upper()
    if not kind:
        suffix = location.suffix.lower()
        kind = {".jks": "JKS", ".p12": "PKCS12", ".pfx": "PKCS12", ".bcfks": "BCFKS"}.get(
            suffix, "PEM")
    if kind != "PEM":
        raise ConfigError(
            f"{key}: {kind} stores are not supported, only PEM (ssl.keyStore.type=PEM); "
            f"convert it, e.g. `openssl pkcs12 -in {location} -nodes -out store.pem` "
            "(keytool -importkeystore -deststoretype PKCS12 first for a JKS store)")


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """The server side SSLContext; ConfigError (naming the file) if a store cannot be used."""
    if settings.client_auth not in CLIENT_AUTH:
        raise ConfigError(f"ssl.clientAuth must be none, want or need, not "
                          f"{settings.client_auth!r}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if settings.protocols:
        versions = []
        for name in settings.protocols:
            if name not in _PROTOCOLS:
                raise ConfigError(f"TLS protocol {name!r} is not supported (TLSv1.2, TLSv1.3)")
            versions.append(_PROTOCOLS[name])
        context.minimum_version = min(versions)
        context.maximum_version = max(versions)
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.key_store, password=settings.key_store_password)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"ssl.keyStore.location {settings.key_store}: cannot load a private "
                          f"key and certificate from it ({exc}); it must be PEM with both, and "
                          "ssl.keyStore.password must be given for an encrypted key") from exc
    try:
        if settings.trust_store is not None:
            context.load_verify_locations(cafile=settings.trust_store)
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"ssl.trustStore.location {settings.trust_store}: cannot load "
                          f"certificates from it ({exc})") from exc
    context.verify_mode = CLIENT_AUTH[settings.client_auth]
    return context


# ------------------------------------------------------------------ the x509 identity

_RFC2253_KEYWORDS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
_ESCAPED = ',=+<>#;"\\'


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _string_der(tag: int, value: str) -> bytes:
    if tag == 30:  # BMPString
        body = value.encode("utf-16-be")
    elif tag == 28:  # UniversalString
        body = value.encode("utf-32-be")
    elif tag == 12:  # UTF8String
        body = value.encode("utf-8")
    else:  # PrintableString, IA5String, T61String, VisibleString, NumericString
        body = value.encode("latin-1")
    return bytes([tag]) + _der_length(len(body)) + body


def _escape(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPED:
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\00")
        else:
            out.append(ch)
    text = "".join(out)
    # leading and trailing spaces are escaped (RFC 2253 2.4), as Java does
    lead = len(text) - len(text.lstrip(" "))
    trail = len(text) - len(text.rstrip(" "))
    if lead == len(text):
        return "\\ " * lead
    return "\\ " * lead + text[lead:len(text) - trail] + "\\ " * trail


def x509_identity(der: bytes) -> str:
    """The subject of a DER certificate as Java's `X500Principal.getName()` (RFC 2253)."""
    from cryptography import x509  # only a TLS client with a certificate needs it

    certificate = x509.load_der_x509_certificate(der)
    rdns = []
    for rdn in reversed(list(certificate.subject.rdns)):
        parts = []
        for attribute in rdn:
            oid = attribute.oid.dotted_string
            value = attribute.value
            keyword = _RFC2253_KEYWORDS.get(oid)
            if keyword is not None and isinstance(value, str):
                parts.append(f"{keyword}={_escape(value)}")
            else:
                tag = attribute._type.value  # the value's ASN.1 string type
                raw = value if isinstance(value, bytes) else _string_der(tag, value)
                parts.append(f"{oid}=#{raw.hex()}")
        rdns.append("+".join(parts))
    return ",".join(rdns)
