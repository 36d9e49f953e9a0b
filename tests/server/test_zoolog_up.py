"""`zoolog up` as an operator runs it: zoo.cfg, the printed connect string, clean stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import SessionClosedRequireSaslError
from kazoo.security import make_acl
from tests.tls_certs import CertificateAuthority, name

from zoolog.errors import ConfigError
from zoolog.server.config import parse_zoo_cfg
from zoolog.testing import wait_until


def _gone(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_up_reads_zoo_cfg_serves_and_stops_cleanly(tmp_path: Path, stop_signal: int) -> None:
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(
        f"# an operator's file\ntickTime=500\ndataDir={tmp_path / 'data'}\nclientPort={port}\n"
        "maxClientCnxns=10\nminSessionTimeout=1000\nmaxSessionTimeout=5000\n"
        "initLimit=5\nsyncLimit=2\nautopurge.purgeInterval=1\n"
    )
    proc = subprocess.Popen([sys.executable, "-m", "zoolog", "up", "--config", str(cfg),
                             "--kafka-port", str(free_port())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert f"listening on 127.0.0.1:{port}" in first
    client = KazooClient(hosts=f"127.0.0.1:{port}", timeout=30)
    client.start(timeout=10)
    client.create("/from-cfg", b"ok")
    assert ",to=5000," in client.command(b"cons")  # 30 s clamped by maxSessionTimeout
    client.stop()
    client.close()
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 2  # the client front and the broker
    os.killpg(proc.pid, stop_signal)  # as Ctrl-C in a terminal or systemd would: the group
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopping" in out
    assert "Traceback" not in err and "error" not in err.lower(), err
    wait_until(lambda: all(_gone(int(child)) for child in children), 10,
               "the child processes to exit with the core")
    assert (tmp_path / "data" / "version-2").is_dir()


def test_up_reports_bad_config_clearly(tmp_path: Path) -> None:
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text("tickTime=fast\n")
    result = subprocess.run([sys.executable, "-m", "zoolog", "up", "--config", str(cfg)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "tickTime: expected an integer" in result.stderr


def test_zoo_cfg_mapping() -> None:
    config = parse_zoo_cfg(
        "tickTime=1000\nclientPortAddress=0.0.0.0\nforceSync=no\nsnapCount=10\n"
        "4lw.commands.whitelist=srvr, ruok\nzookeeper.extendedTypesEnabled=false\n"
        "DigestAuthenticationProvider.superDigest=super:abc=\nserver.1=h:2888:3888\n"
    )
    assert config.tick_ms == 1000 and config.host == "0.0.0.0"
    assert config.sync_writes is False and config.snap_count == 10
    assert config.four_letter_whitelist == frozenset({"srvr", "ruok"})
    assert config.extended_types_enabled is False and config.super_digest == "super:abc="
    assert config.quorum == {"server.1": "h:2888:3888"}
    with pytest.raises(ConfigError):
        parse_zoo_cfg("minSessionTimeout=9000\nmaxSessionTimeout=1000\n")


def test_up_single_process_serves_without_a_front_process(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "zoolog", "up", "--single-process",
                             "--no-kafka", "--data-dir", str(tmp_path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert f"listening on 127.0.0.1:{port}" in proc.stdout.readline()
    client = KazooClient(hosts=f"127.0.0.1:{port}", timeout=30)
    client.start(timeout=10)
    client.create("/one", b"process")
    assert client.get("/one")[0] == b"process"
    client.stop()
    client.close()
    assert Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split() == []
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopping" in out


JAAS = """Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_bob="bobsecret";
};
"""


@pytest.mark.parametrize("where", ["zoo.cfg", "--jaas"])
def test_up_with_sasl_users_from_a_jaas_file(tmp_path: Path, where: str) -> None:
    """An operator's SASL set-up: the JAAS file named in zoo.cfg (with ZooKeeper's enforcement
    key) or on the command line; kazoo authenticates over DIGEST-MD5, anonymous requests are
    refused."""
    port = free_port()
    jaas = tmp_path / "jaas.conf"
    jaas.write_text(JAAS)
    cfg = tmp_path / "zoo.cfg"
    lines = [f"dataDir={tmp_path / 'data'}", f"clientPort={port}",
             "sessionRequireClientSASLAuth=true"]
    args = ["--jaas", str(jaas)] if where == "--jaas" else []
    if where == "zoo.cfg":
        lines.append(f"java.security.auth.login.config={jaas}")
    cfg.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "zoolog", "up", "--no-kafka", "--config",
                             str(cfg), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        assert f"listening on 127.0.0.1:{port}" in proc.stdout.readline()
        bob = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10, sasl_options={
            "mechanism": "DIGEST-MD5", "username": "bob", "password": "bobsecret"})
        bob.start(timeout=10)
        bob.create("/sasl-up", b"ok")
        assert bob.get("/sasl-up")[0] == b"ok"
        bob.stop()
        bob.close()
        anonymous = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10,
                                connection_retry={"max_tries": 0})
        anonymous.start(timeout=10)
        with pytest.raises(SessionClosedRequireSaslError):
            anonymous.exists("/sasl-up")
        anonymous.stop()
        anonymous.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_up_reports_a_bad_jaas_file_clearly(tmp_path: Path) -> None:
    jaas = tmp_path / "jaas.conf"
    jaas.write_text('Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n'
                    '  username="bob" password="x";\n};\n')
    result = subprocess.run([sys.executable, "-m", "zoolog", "up", "--no-kafka", "--jaas",
                             str(jaas), "--data-dir", str(tmp_path / "data")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "has no 'Server' section (it has: Client)" in result.stderr


def test_up_serves_tls_from_zoo_cfg(tmp_path: Path) -> None:
    """secureClientPort and ZooKeeper's ssl.* keys in an operator's zoo.cfg: `zoolog up` says
    where TLS is served, kazoo connects with a client certificate and gets its x509 identity,
    and the plain port serves beside it."""
    ca = CertificateAuthority(tmp_path / "pki")
    server = ca.issue("server", name(("CN", "localhost")), hosts=("127.0.0.1",))
    carol = ca.issue("carol", name(("CN", "carol")))
    port, secure_port = free_port(), free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(
        f"dataDir={tmp_path / 'data'}\nclientPort={port}\nsecureClientPort={secure_port}\n"
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"
        f"ssl.keyStore.location={server.bundle}\nssl.keyStore.type=PEM\n"
        f"ssl.trustStore.location={ca.pem}\nssl.trustStore.type=PEM\n")
    proc = subprocess.Popen([sys.executable, "-m", "zoolog", "up", "--no-kafka", "--config",
                             str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert f"listening on 127.0.0.1:{port}" in proc.stdout.readline()
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert any(f"TLS on 127.0.0.1:{secure_port} (ssl.clientAuth=need)" in line
                   for line in lines), lines
        tls = KazooClient(hosts=f"127.0.0.1:{secure_port}", timeout=10, use_ssl=True,
                          ca=str(ca.pem), certfile=str(carol.cert), keyfile=str(carol.key))
        tls.start(timeout=10)
        tls.create("/tls-up", b"ok", acl=[make_acl("x509", "CN=carol", all=True)])
        assert tls.get("/tls-up")[0] == b"ok"
        tls.stop()
        tls.close()
        plain = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
        plain.start(timeout=10)
        assert plain.exists("/tls-up") is not None
        plain.stop()
        plain.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
