"""A throwaway PKI for TLS tests: a CA, and server and client certificates it signs, written as
PEM files that Python's ssl, kazoo and ZooKeeper 3.8 (`ssl.keyStore.type=PEM`) all read.

Every key is an unencrypted PKCS#8 EC P-256 key (ZooKeeper's PEM reader takes PKCS#8), or
encrypted with a password when one is given.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_ATTRIBUTES = {
    "CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "C": NameOID.COUNTRY_NAME,
    "L": NameOID.LOCALITY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "DC": NameOID.DOMAIN_COMPONENT, "emailAddress": NameOID.EMAIL_ADDRESS,
}


def name(*pairs: tuple[str, str]) -> x509.Name:
    """An X.509 name from (attribute, value) pairs in ASN.1 order (the DN reads reversed)."""
    return x509.Name([x509.NameAttribute(_ATTRIBUTES[k], v) for k, v in pairs])


@dataclass(frozen=True)
class Issued:
    cert: Path
    """The certificate (PEM)."""
    key: Path
    """Its private key (PEM, PKCS#8)."""
    bundle: Path
    """Key and certificate in one file: a PEM key store."""


def _key_pem(key: ec.EllipticCurvePrivateKey, password: str | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


class CertificateAuthority:
    def __init__(self, directory: Path, subject: x509.Name | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.subject = subject or name(("O", "zoolog tests"), ("CN", "zoolog test CA"))
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.subject).issuer_name(self.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = directory / "ca.pem"
        """The trust store: the CA certificate."""
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, stem: str, subject: x509.Name, *, hosts: tuple[str, ...] = (),
              password: str | None = None) -> Issued:
        """A certificate for `subject`, usable by servers and clients; `hosts` become its
        subject alternative names (IP addresses or DNS names)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
        )
        if hosts:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = _key_pem(key, password)
        paths = Issued(self.directory / f"{stem}.crt", self.directory / f"{stem}.key",
                       self.directory / f"{stem}.pem")
        paths.cert.write_bytes(cert_pem)
        paths.key.write_bytes(key_pem)
        paths.bundle.write_bytes(key_pem + cert_pem)
        return paths
