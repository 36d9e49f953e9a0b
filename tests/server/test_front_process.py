"""The client front in its own process: it may die and be replaced, and it never outlives
its core."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from tests.tls_certs import CertificateAuthority, name

from zoolog.errors import StartupError
from zoolog.protocol.zk.handoff import CMD_SEND, EV_FOUR_LETTER_WORD, EV_OPEN
from zoolog.server.zk_front import ClientFront, FrontConnection, MessageLink, ProcessFront
from zoolog.testing import ZkServerThread, wait_until


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return not any(line.startswith("State:\tZ") for line in status)
    except FileNotFoundError:
        return False


def test_a_killed_front_is_replaced_and_sessions_survive(tmp_path: Path) -> None:
    with ZkServerThread(tmp_path, client_front_process=True) as server:
        client = KazooClient(hosts=server.connect_string, timeout=10)
        client.start(timeout=10)
        try:
            client.create("/worker", b"alive", ephemeral=True)
            session_id = client.client_id[0]
            front = server.call(lambda: server.node.front)
            assert isinstance(front, ProcessFront) and front.process is not None
            first_pid = front.process.pid
            os.kill(first_pid, signal.SIGKILL)
            wait_until(lambda: server.call(lambda: front.restarts) == 1, 10, "a new front")
            wait_until(lambda: client.connected and client.exists("/worker") is not None, 20,
                       "the client back on the new front")
            assert front.process.pid != first_pid
            assert client.client_id[0] == session_id  # the same session, its ephemeral kept
            client.set("/worker", b"still")
            assert client.get("/worker")[0] == b"still"
        finally:
            client.stop()
            client.close()


def test_a_replaced_front_serves_tls_again(tmp_path: Path) -> None:
    """The new front builds its TLS context from the same settings, the encrypted key's
    password included (it travels in the environment, not on the command line), and clients
    still prove their certificates."""
    ca = CertificateAuthority(tmp_path / "pki")
    server_cert = ca.issue("server", name(("CN", "localhost")), hosts=("127.0.0.1",),
                           password="key-pw")
    carol = ca.issue("carol", name(("CN", "carol")))
    with ZkServerThread(tmp_path / "zk", client_front_process=True, secure_client_port=0,
                        tls_key_store=server_cert.bundle, tls_key_store_password="key-pw",
                        tls_trust_store=ca.pem) as server:
        def whoami() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "zoolog", "zk", "-server",
                 f"127.0.0.1:{server.secure_port}", "--tls", "--tls-ca", str(ca.pem),
                 "--tls-cert", str(carol.cert), "--tls-key", str(carol.key), "whoami"],
                capture_output=True, text=True, timeout=60, check=False)

        assert "x509: CN=carol" in whoami().stdout
        front = server.call(lambda: server.node.front)
        assert isinstance(front, ProcessFront) and front.process is not None
        assert "key-pw" not in " ".join(str(a) for a in front.process.args)
        os.kill(front.process.pid, signal.SIGKILL)
        wait_until(lambda: server.call(lambda: front.restarts) == 1, 10, "a new front")
        wait_until(lambda: "x509: CN=carol" in whoami().stdout, 20,
                   "TLS served by the new front")


def test_the_front_dies_with_its_core_and_frees_the_port(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "zoolog", "up", "--no-kafka", "--data-dir", str(tmp_path),
               "--port",
               str(port), "--log-level", "WARNING"]
    core = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert core.stdout is not None
    assert "listening on" in core.stdout.readline().decode()
    client = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
    client.start(timeout=10)
    client.create("/kept", b"v")
    client.stop()
    client.close()
    children = Path(f"/proc/{core.pid}/task/{core.pid}/children").read_text().split()
    assert len(children) == 1, children  # the front
    front_pid = int(children[0])
    core.kill()
    core.communicate(timeout=10)
    wait_until(lambda: not _alive(front_pid), 10, "the front to exit after its core")
    again = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert again.stdout is not None
        assert "listening on" in again.stdout.readline().decode()  # the port was free
        client = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
        client.start(timeout=10)
        assert client.get("/kept")[0] == b"v"
        client.stop()
        client.close()
    finally:
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=30)


class _Pipe:
    """A transport that hands what is written to the other end of a link."""

    def __init__(self, receiver: MessageLink) -> None:
        self.receiver = receiver
        self.messages = 0

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.messages += 1
        self.receiver.data_received(data)


def test_a_batch_too_big_for_one_link_message_is_split_in_order() -> None:
    received: list[tuple[object, ...]] = []
    receiver = MessageLink(received.extend, lambda: None)
    sender = MessageLink(lambda items: None, lambda: None)
    pipe = _Pipe(receiver)
    sender.transport = pipe  # type: ignore[assignment]
    # 150 distinct 1 MiB frames in one pass (marshal would share one repeated object)
    batch = [(CMD_SEND, conn_id, bytes([conn_id]) * (1 << 20)) for conn_id in range(150)]
    sender.send(batch)
    assert received == batch
    assert pipe.messages >= 3


def test_a_front_that_cannot_start_fails_the_start_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the child exits at once
    server = ZkServerThread(tmp_path, client_front_process=True)
    with pytest.raises(StartupError, match="exited before accepting clients"):
        server.start()


class _Transport(asyncio.Transport):
    """Records what a FrontConnection does to its transport."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 5555) if name == "peername" else default

    def pause_reading(self) -> None:
        self.calls.append("pause_reading")

    def resume_reading(self) -> None:
        self.calls.append("resume_reading")

    def abort(self) -> None:
        self.calls.append("abort")


def test_bytes_after_a_four_letter_word_are_not_taken_for_a_frame() -> None:
    events: list[tuple[object, ...]] = []
    front = ClientFront(events.extend, 1 << 20, 0)
    conn = FrontConnection(front)
    transport = _Transport()
    conn.connection_made(transport)
    conn.data_received(b"ruok")
    conn.data_received(b"\x7f\xff\xff\xff garbage that is no frame")  # a later segment
    assert [event[0] for event in events] == [EV_OPEN, EV_FOUR_LETTER_WORD]
    assert transport.calls == ["pause_reading"]  # not "abort": the answer is on its way
