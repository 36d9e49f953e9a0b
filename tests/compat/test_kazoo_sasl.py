"""kazoo (with pure-sasl) authenticating to zoolog with SASL DIGEST-MD5, as it does to
ZooKeeper 3.8: users from a JAAS Server section, `sasl:NAME` identities in ACLs, AUTHFAILED on
a bad password, enforced authentication, and the server serving everyone else meanwhile."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    NoAuthError,
    SessionClosedRequireSaslError,
)
from kazoo.protocol.states import KeeperState
from kazoo.security import make_acl
from tests.kazoo_clients import stop_all

from zoolog.testing import ZkServerThread
from zoolog.testing.servers import wait_until

JAAS = """\
// users of the ZooKeeper port, as a ZooKeeper operator writes them
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret"
    user_bob="bobsecret"
    user_alice="alicesecret";
};
"""

NO_RETRY = {"max_tries": 0}


def sasl(user: str, password: str) -> dict[str, str]:
    return {"mechanism": "DIGEST-MD5", "username": user, "password": password}


def assert_auth_fails(kazoo: KazooClient) -> None:
    """kazoo reports CONNECTED before it negotiates SASL, so start() returns or raises
    AuthFailedError depending on timing, and kazoo then moves on from AUTH_FAILED to CLOSED.
    So the client's session-state calls are recorded and must include AUTH_FAILED."""
    seen: list[str] = []
    report = kazoo._session_callback

    def record(state: str) -> None:
        seen.append(state)
        report(state)

    kazoo._session_callback = record  # type: ignore[method-assign]
    with contextlib.suppress(AuthFailedError):
        kazoo.start(timeout=10)
    wait_until(lambda: KeeperState.AUTH_FAILED in seen, 10,
               "the client is told its authentication failed")


@pytest.fixture
def jaas_file(tmp_path: Path) -> Path:
    path = tmp_path / "jaas.conf"
    path.write_text(JAAS, encoding="utf-8")
    return path


@pytest.fixture
def start_node(tmp_path: Path, jaas_file: Path) -> Iterator[Callable[..., ZkServerThread]]:
    nodes: list[ZkServerThread] = []

    def start(**settings: Any) -> ZkServerThread:
        settings.setdefault("jaas_path", jaas_file)
        node = ZkServerThread(tmp_path / f"zk{len(nodes)}", tick_ms=200, **settings).start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., KazooClient]]:
    made: list[KazooClient] = []

    def client(node: ZkServerThread, start: bool = True, **kwargs: Any) -> KazooClient:
        kazoo = KazooClient(hosts=node.connect_string, timeout=5,
                            connection_retry=NO_RETRY, **kwargs)
        made.append(kazoo)
        if start:
            kazoo.start(timeout=10)
        return kazoo

    yield client
    stop_all(made)


def test_sasl_user_owns_a_node_others_are_refused(
    start_node: Callable[..., ZkServerThread], clients: Callable[..., KazooClient],
    front_process: bool,
) -> None:
    node = start_node(client_front_process=front_process)
    bob = clients(node, sasl_options=sasl("bob", "bobsecret"))
    bob.create("/bob", b"mine", acl=[make_acl("sasl", "bob", all=True)])
    assert bob.get("/bob")[0] == b"mine"
    acl = bob.get_acls("/bob")[0]
    assert [(a.id.scheme, a.id.id, a.perms) for a in acl] == [("sasl", "bob", 31)]

    alice = clients(node, sasl_options=sasl("alice", "alicesecret"))
    anonymous = clients(node)
    for other in (alice, anonymous):
        with pytest.raises(NoAuthError):
            other.get("/bob")
        with pytest.raises(NoAuthError):
            other.set("/bob", b"theirs")
    bob.set("/bob", b"still mine")
    assert bob.get("/bob")[0] == b"still mine"


def test_auth_scheme_acl_expands_to_the_sasl_identity(
    start_node: Callable[..., ZkServerThread], clients: Callable[..., KazooClient],
) -> None:
    node = start_node()
    bob = clients(node, sasl_options=sasl("bob", "bobsecret"))
    bob.create("/auth", b"x", acl=[make_acl("auth", "", read=True, write=True)])
    acl = bob.get_acls("/auth")[0]
    assert [(a.id.scheme, a.id.id, a.perms) for a in acl] == [("sasl", "bob", 3)]


def test_legacy_auth_data_form_negotiates_digest_md5(
    start_node: Callable[..., ZkServerThread], clients: Callable[..., KazooClient],
) -> None:
    """kazoo turns auth_data=[("sasl", "user:password")] into the same DIGEST-MD5 exchange
    (with a DeprecationWarning); the identity is the same."""
    node = start_node()
    owner = clients(node, sasl_options=sasl("bob", "bobsecret"))
    owner.create("/legacy", b"v", acl=[make_acl("sasl", "bob", read=True)])
    with pytest.warns(DeprecationWarning, match="sasl_options"):
        legacy = clients(node, start=False, auth_data=[("sasl", "bob:bobsecret")])
    legacy.start(timeout=10)
    assert legacy.get("/legacy")[0] == b"v"


def test_wrong_password_and_unknown_user_fail_and_the_server_serves_on(
    start_node: Callable[..., ZkServerThread], clients: Callable[..., KazooClient],
    front_process: bool,
) -> None:
    node = start_node(client_front_process=front_process)
    bystander = clients(node)
    bystander.create("/serving", b"1")
    for options in (sasl("bob", "wrong"), sasl("mallory", "bobsecret")):
        assert_auth_fails(clients(node, start=False, sasl_options=options))
        assert bystander.get("/serving")[0] == b"1"
    assert clients(node, sasl_options=sasl("bob", "bobsecret")).exists("/serving") is not None


def test_addauth_with_the_sasl_scheme_is_refused(
    start_node: Callable[..., ZkServerThread], clients: Callable[..., KazooClient],
) -> None:
    """SASL is negotiated with sasl requests; an auth packet naming the sasl scheme fails and
    the connection is closed, as ZooKeeper's SASLAuthenticationProvider answers."""
    node = start_node()
    kazoo = clients(node)
    with pytest.raises(AuthFailedError):
        kazoo.add_auth("sasl", "bob:bobsecret")


def test_sasl_without_a_jaas_file_fails_at_once(
    start_node: Callable[..., ZkServerThread], clients: Callable[..., KazooClient],
) -> None:
    """ZooKeeper without a JAAS Server section answers every sasl request OK with no token, so
    kazoo asks again until its timeout; zoolog answers AUTHFAILED."""
    node = start_node(jaas_path=None)
    assert_auth_fails(clients(node, start=False, sasl_options=sasl("bob", "bobsecret")))
    assert clients(node).exists("/") is not None


def test_super_user_passes_every_acl(
    start_node: Callable[..., ZkServerThread], clients: Callable[..., KazooClient],
) -> None:
    node = start_node(sasl_super_user="super")
    bob = clients(node, sasl_options=sasl("bob", "bobsecret"))
    bob.create("/locked", b"secret", acl=[make_acl("sasl", "bob", read=True)])
    admin = clients(node, sasl_options=sasl("super", "adminsecret"))
    assert admin.get("/locked")[0] == b"secret"
    admin.delete("/locked")
    assert bob.exists("/locked") is None


def test_enforced_sasl_closes_unauthenticated_connections(
    start_node: Callable[..., ZkServerThread], clients: Callable[..., KazooClient],
    front_process: bool,
) -> None:
    node = start_node(session_require_client_sasl_auth=True,
                      client_front_process=front_process)
    anonymous = clients(node)
    with pytest.raises(SessionClosedRequireSaslError):
        anonymous.exists("/")
    bob = clients(node, sasl_options=sasl("bob", "bobsecret"))
    bob.create("/enforced", b"ok")
    assert bob.get("/enforced")[0] == b"ok"


def test_enforced_digest_scheme_accepts_addauth_digest(
    start_node: Callable[..., ZkServerThread], clients: Callable[..., KazooClient],
) -> None:
    node = start_node(enforce_auth_enabled=True, enforce_auth_schemes=frozenset({"digest"}))
    digest = clients(node, auth_data=[("digest", "carol:pw")])
    assert digest.exists("/") is not None
    with pytest.raises(SessionClosedRequireSaslError):
        clients(node, sasl_options=sasl("bob", "bobsecret")).exists("/")


def test_allow_sasl_failed_clients_keeps_the_connection(
    start_node: Callable[..., ZkServerThread], clients: Callable[..., KazooClient],
) -> None:
    """zookeeper.allowSaslFailedClients: a failed negotiation is answered OK with no token and
    the connection stays, unauthenticated (kazoo then asks again until its timeout, as it
    does against ZooKeeper)."""
    node = start_node(allow_sasl_failed_clients=True)
    owner = clients(node, sasl_options=sasl("bob", "bobsecret"))
    owner.create("/mine", b"v", acl=[make_acl("sasl", "bob", read=True)])
    assert clients(node).exists("/mine") is not None
