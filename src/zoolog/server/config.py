"""Settings of a coordination node, and how they are read from a ZooKeeper `zoo.cfg`.

`zoo.cfg` keys keep their ZooKeeper meaning (tickTime, dataDir, clientPort, clientPortAddress,
maxClientCnxns, minSessionTimeout, maxSessionTimeout, snapCount, forceSync,
globalOutstandingLimit,
4lw.commands.whitelist, extendedTypesEnabled, jute.maxbuffer,
DigestAuthenticationProvider.superDigest, and SASL's java.security.auth.login.config,
sasl.serverconfig, superUser, enforce.auth.enabled, enforce.auth.schemes,
sessionRequireClientSASLAuth, allowSaslFailedClients, and TLS's secureClientPort,
secureClientPortAddress, ssl.keyStore.*, ssl.trustStore.*, ssl.clientAuth, ssl.protocol,
ssl.enabledProtocols, X509AuthenticationProvider.superUser, each also with ZooKeeper's
`zookeeper.` system-property prefix); unknown keys are reported, never silently dropped
into a different meaning. Quorum keys (server.N, initLimit, syncLimit) are accepted and recorded
for the replicated mode. zoolog's own limits are set with `zoolog.limits.<name>=N`, where
`<name>` is a field of `zoolog.limits.Limits`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from zoolog.coord.service import ServiceConfig
from zoolog.errors import ConfigError
from zoolog.limits import Limits
from zoolog.server.jaas import DEFAULT_SERVER_SECTION, digest_users
from zoolog.server.tls import TlsSettings, server_context, store_type

DEFAULT_FOUR_LETTER_WHITELIST = frozenset(
    ("ruok", "isro", "srvr", "stat", "mntr", "cons", "conf", "envi", "wchs", "wchc", "wchp",
     "dump", "dirs", "crst", "srst")
)
"""zoolog enables the read-only four-letter words by default (ZooKeeper only `srvr`): they
reveal nothing a client cannot already see and every monitoring tool expects them."""


@dataclass
class NodeConfig:
    data_dir: Path = Path("zoolog-data")
    host: str = "127.0.0.1"
    client_port: int = 2181
    server_id: int = 1
    tick_ms: int = 2000
    min_session_timeout_ms: int = 0
    max_session_timeout_ms: int = 0
    max_client_connections: int = 60
    snap_count: int = 100_000
    """Txns between snapshots (ZooKeeper's snapCount)."""
    sync_writes: bool = True
    """fdatasync each batch before acknowledging it (ZooKeeper's forceSync)."""
    container_check_interval_ms: int = 60_000
    four_letter_whitelist: frozenset[str] = DEFAULT_FOUR_LETTER_WHITELIST
    extended_types_enabled: bool = True
    super_digest: str | None = None
    jaas_path: Path | None = None
    """A JAAS login file whose server section lists the SASL DIGEST-MD5 users; None: no
    SASL (ZooKeeper: -Djava.security.auth.login.config=FILE)."""
    sasl_server_section: str = DEFAULT_SERVER_SECTION
    sasl_super_user: str | None = None
    enforce_auth_enabled: bool = False
    enforce_auth_schemes: frozenset[str] = frozenset()
    session_require_client_sasl_auth: bool = False
    allow_sasl_failed_clients: bool = False
    client_port_enabled: bool = True
    """Serve plain connections on client_port (a zoo.cfg with only secureClientPort: no)."""
    secure_client_port: int | None = None
    """TLS connections on this port (0: any free port); None: no TLS listener."""
    secure_host: str | None = None
    """secureClientPortAddress; None: the same address as the plain port."""
    tls_key_store: Path | None = None
    tls_key_store_password: str | None = None
    tls_key_store_type: str | None = None
    tls_trust_store: Path | None = None
    tls_trust_store_type: str | None = None
    tls_client_auth: str = "need"
    tls_protocols: tuple[str, ...] = ()
    x509_super_user: str | None = None
    """A certificate subject (RFC 2253 DN) that bypasses every ACL."""
    frame_bytes_max: int = 0
    """0 means Limits' default (jute.maxbuffer + slack)."""
    outstanding_requests_max: int = 1000
    """Requests one connection may have in flight before reading from it pauses
    (zoo.cfg `globalOutstandingLimit`)."""
    client_front_process: bool = False
    """Run the client front (sockets, framing, decoding) in a child process, on another CPU
    core than the state machine. `zoolog up` turns it on; in-process test servers leave it off
    unless asked."""
    limit_overrides: dict[str, int] = field(default_factory=dict)
    """Any `Limits` field by name (zoo.cfg `zoolog.limits.<name>=N`)."""
    unknown_keys: dict[str, str] = field(default_factory=dict)
    quorum: dict[str, str] = field(default_factory=dict)

    def limits(self) -> Limits:
        limits = Limits(
            connections_per_address_max=self.max_client_connections,
            outstanding_requests_per_connection_max=self.outstanding_requests_max,
        )
        unknown = set(self.limit_overrides) - {f.name for f in dataclasses.fields(Limits)}
        if unknown:
            raise ConfigError(f"unknown limits: {', '.join(sorted(unknown))}")
        limits = dataclasses.replace(limits, **self.limit_overrides)
        if self.frame_bytes_max:
            limits = dataclasses.replace(
                limits,
                frame_bytes_max=self.frame_bytes_max + 1024,
                znode_data_bytes_max=self.frame_bytes_max,
            )
        limits.validate()
        return limits

    def required_auth_schemes(self) -> frozenset[str]:
        """What enforcement asks of every connection (ZooKeeper's AuthenticationHelper):
        sessionRequireClientSASLAuth means sasl; enforce.auth.enabled means its schemes."""
        if self.session_require_client_sasl_auth:
            return frozenset({"sasl"})
        return self.enforce_auth_schemes if self.enforce_auth_enabled else frozenset()

    def tls_settings(self) -> TlsSettings | None:
        if self.secure_client_port is None:
            return None
        if self.tls_key_store is None:
            raise ConfigError("secureClientPort needs ssl.keyStore.location (a PEM file with "
                              "the server's private key and certificate)")
        return TlsSettings(self.tls_key_store, self.tls_key_store_password,
                           self.tls_trust_store, self.tls_client_auth, self.tls_protocols)

    def service_config(self) -> ServiceConfig:
        sasl_users = (digest_users(self.jaas_path, self.sasl_server_section)
                      if self.jaas_path is not None else None)
        return ServiceConfig(
            server_id=self.server_id,
            tick_ms=self.tick_ms,
            min_session_timeout_ms=self.min_session_timeout_ms,
            max_session_timeout_ms=self.max_session_timeout_ms,
            super_digest=self.super_digest,
            extended_types_enabled=self.extended_types_enabled,
            sasl_users=sasl_users,
            sasl_super_user=self.sasl_super_user,
            enforce_auth_schemes=self.required_auth_schemes(),
            allow_sasl_failed_clients=self.allow_sasl_failed_clients,
            x509_super_user=self.x509_super_user,
            limits=self.limits(),
        )

    def validate(self) -> None:
        if self.tick_ms <= 0:
            raise ConfigError("tickTime must be positive")
        if not 0 < self.client_port < 65536 and self.client_port != 0:
            raise ConfigError(f"clientPort {self.client_port} out of range")
        if not 0 <= self.server_id <= 254:
            raise ConfigError("server id must be 0..254 (extended types use the high byte)")
        min_ms = self.min_session_timeout_ms or 2 * self.tick_ms
        max_ms = self.max_session_timeout_ms or 20 * self.tick_ms
        if min_ms > max_ms:
            raise ConfigError(f"minSessionTimeout {min_ms} > maxSessionTimeout {max_ms}")
        enforcing = self.enforce_auth_enabled and not self.session_require_client_sasl_auth
        # (sessionRequireClientSASLAuth makes ZooKeeper ignore the enforce.auth.* keys)
        if enforcing and not self.enforce_auth_schemes:
            raise ConfigError("enforce.auth.enabled is true: enforce.auth.schemes must name "
                              "the schemes a client must authenticate with (e.g. sasl)")
        unknown = self.enforce_auth_schemes - AUTH_SCHEMES
        if enforcing and unknown:
            raise ConfigError(f"enforce.auth.schemes: unknown scheme(s) "
                              f"{', '.join(sorted(unknown))} (known: "
                              f"{', '.join(sorted(AUTH_SCHEMES))})")
        if "sasl" in self.required_auth_schemes() and self.jaas_path is None:
            raise ConfigError("SASL authentication is required, but no JAAS file names its "
                              "users: give --jaas FILE or java.security.auth.login.config")
        if self.jaas_path is not None:
            digest_users(self.jaas_path, self.sasl_server_section)  # readable and well-formed
        if not self.client_port_enabled and self.secure_client_port is None:
            raise ConfigError("neither clientPort nor secureClientPort is set")
        if self.secure_client_port is not None:
            if not 0 <= self.secure_client_port < 65536:
                raise ConfigError(f"secureClientPort {self.secure_client_port} out of range")
            settings = self.tls_settings()
            assert settings is not None
            store_type(settings.key_store, self.tls_key_store_type, "ssl.keyStore.type")
            if settings.trust_store is not None:
                store_type(settings.trust_store, self.tls_trust_store_type,
                           "ssl.trustStore.type")
            server_context(settings)  # the files load and the options make sense
        self.limits()


AUTH_SCHEMES = frozenset({"ip", "digest", "sasl", "x509"})
"""The schemes a client can authenticate with on the client port."""


def _bool(value: str, key: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("yes", "true", "1", "on"):
        return True
    if lowered in ("no", "false", "0", "off"):
        return False
    raise ConfigError(f"{key}: expected yes/no, got {value!r}")


def _int(value: str, key: str) -> int:
    try:
        return int(value.strip())
    except ValueError as exc:
        raise ConfigError(f"{key}: expected an integer, got {value!r}") from exc


_BUILT_IN_AUTH_PROVIDERS = frozenset({
    "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider",
    "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
})

_UNSUPPORTED_TLS_KEYS = {
    "ssl.ciphersuites": "zoolog uses OpenSSL's default cipher suites for TLS 1.2 and 1.3",
    "ssl.crl": "certificate revocation lists are not checked",
    "ssl.ocsp": "OCSP is not checked",
}
"""ZooKeeper registers the sasl scheme only when zoo.cfg names its provider (authProvider.N);
zoolog always knows these schemes, so such lines change nothing."""


def parse_zoo_cfg(text: str, base: NodeConfig | None = None) -> NodeConfig:
    """Apply the keys of a zoo.cfg (Java properties: key=value, # comments) to a NodeConfig."""
    config = dataclasses.replace(base) if base is not None else NodeConfig()
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        sep = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if sep < 0:
            raise ConfigError(f"zoo.cfg line {number}: expected key=value, got {raw!r}")
        key, value = line[:sep].strip(), line[sep + 1 :].strip()
        seen.add(key)
        tls_key = key.removeprefix("zookeeper.")
        if key == "tickTime":
            config.tick_ms = _int(value, key)
        elif key == "dataDir":
            config.data_dir = Path(value)
        elif key == "clientPort":
            config.client_port = _int(value, key)
        elif key == "clientPortAddress":
            config.host = value
        elif key == "maxClientCnxns":
            config.max_client_connections = _int(value, key)
        elif key == "minSessionTimeout":
            config.min_session_timeout_ms = _int(value, key)
        elif key == "maxSessionTimeout":
            config.max_session_timeout_ms = _int(value, key)
        elif key == "snapCount":
            config.snap_count = _int(value, key)
        elif key == "forceSync":
            config.sync_writes = _bool(value, key)
        elif key == "4lw.commands.whitelist":
            words = {w.strip() for w in value.split(",") if w.strip()}
            config.four_letter_whitelist = frozenset(
                DEFAULT_FOUR_LETTER_WHITELIST if "*" in words
                else words
            )
        elif key in ("extendedTypesEnabled", "zookeeper.extendedTypesEnabled"):
            config.extended_types_enabled = _bool(value, key)
        elif key in ("jute.maxbuffer", "zookeeper.jute.maxbuffer"):
            config.frame_bytes_max = _int(value, key)
        elif key in (
            "DigestAuthenticationProvider.superDigest",
            "zookeeper.DigestAuthenticationProvider.superDigest",
        ):
            config.super_digest = value
        elif key in ("java.security.auth.login.config",
                     "zookeeper.java.security.auth.login.config"):
            config.jaas_path = Path(value)
        elif key in ("sasl.serverconfig", "zookeeper.sasl.serverconfig"):
            config.sasl_server_section = value
        elif key in ("superUser", "zookeeper.superUser"):
            config.sasl_super_user = value
        elif key in ("enforce.auth.enabled", "zookeeper.enforce.auth.enabled"):
            config.enforce_auth_enabled = _bool(value, key)
        elif key in ("enforce.auth.schemes", "zookeeper.enforce.auth.schemes"):
            config.enforce_auth_schemes = frozenset(
                s.strip() for s in value.split(",") if s.strip())
        elif key in ("sessionRequireClientSASLAuth", "zookeeper.sessionRequireClientSASLAuth"):
            config.session_require_client_sasl_auth = _bool(value, key)
        elif key in ("allowSaslFailedClients", "zookeeper.allowSaslFailedClients"):
            config.allow_sasl_failed_clients = _bool(value, key)
        elif key.startswith("authProvider.") and value in _BUILT_IN_AUTH_PROVIDERS:
            config.unknown_keys[key] = value  # understood: zoolog always has these schemes
        elif key == "secureClientPort":
            config.secure_client_port = _int(value, key)
        elif key == "secureClientPortAddress":
            config.secure_host = value
        elif tls_key == "ssl.keyStore.location":
            config.tls_key_store = Path(value)
        elif tls_key == "ssl.keyStore.password":
            config.tls_key_store_password = value or None
        elif tls_key == "ssl.keyStore.type":
            config.tls_key_store_type = value
        elif tls_key == "ssl.trustStore.location":
            config.tls_trust_store = Path(value)
        elif tls_key == "ssl.trustStore.type":
            config.tls_trust_store_type = value
        elif tls_key == "ssl.trustStore.password":
            pass  # a PEM trust store holds no secret; ZooKeeper ignores it for PEM as well
        elif tls_key == "ssl.clientAuth":
            config.tls_client_auth = value.strip().lower()
        elif tls_key == "ssl.protocol":
            if not config.tls_protocols:
                config.tls_protocols = (value.strip(),)
        elif tls_key == "ssl.enabledProtocols":
            config.tls_protocols = tuple(p.strip() for p in value.split(",") if p.strip())
        elif tls_key == "ssl.ciphersuites" or (
            tls_key in ("ssl.crl", "ssl.ocsp") and _bool(value, key)
        ):
            raise ConfigError(f"{key} is not supported: {_UNSUPPORTED_TLS_KEYS[tls_key]}")
        elif tls_key in ("ssl.crl", "ssl.ocsp", "ssl.hostnameVerification"):
            # off, or (hostname verification) a client-side check: ZooKeeper's server does
            # not verify client host names on the client port either
            config.unknown_keys[key] = value
        elif key in ("X509AuthenticationProvider.superUser",
                     "zookeeper.X509AuthenticationProvider.superUser"):
            config.x509_super_user = value
        elif key == "serverCnxnFactory":
            config.unknown_keys[key] = value  # understood: ZooKeeper needs Netty for TLS
        elif key in ("globalOutstandingLimit", "zookeeper.globalOutstandingLimit"):
            config.outstanding_requests_max = _int(value, key)
        elif key.startswith("zoolog.limits."):
            config.limit_overrides[key.removeprefix("zoolog.limits.")] = _int(value, key)
        elif key == "containerCheckIntervalMs" or key == "znode.container.checkIntervalMs":
            config.container_check_interval_ms = _int(value, key)
        elif key.startswith("server.") or key in (
            "initLimit", "syncLimit", "electionAlg", "peerType", "dynamicConfigFile",
        ):
            config.quorum[key] = value
        elif key in (
            "dataLogDir", "autopurge.snapRetainCount", "autopurge.purgeInterval",
            "admin.enableServer", "admin.serverPort", "standaloneEnabled",
            "reconfigEnabled", "metricsProvider.className", "preAllocSize",
        ):
            config.unknown_keys[key] = value  # understood, and not applicable to zoolog
        else:
            config.unknown_keys[key] = value
    if "secureClientPort" in seen and "clientPort" not in seen:
        config.client_port_enabled = False  # ZooKeeper then serves TLS only
    config.validate()
    return config


def load_zoo_cfg(path: str | Path, base: NodeConfig | None = None) -> NodeConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return parse_zoo_cfg(text, base)
