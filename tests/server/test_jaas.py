"""JAAS login files (zoolog.server.jaas) as ZooKeeper operators write them, and the SASL keys of
zoo.cfg (zoolog.server.config): which users a node serves, who is super, what it enforces."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from zoolog.errors import ConfigError
from zoolog.server.config import NodeConfig, parse_zoo_cfg
from zoolog.server.jaas import DEFAULT_SERVER_SECTION, LoginModule, digest_users, parse_jaas

DIGEST = "org.apache.zookeeper.server.auth.DigestLoginModule"

ZOOKEEPER_JAAS = """\
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="adminsecret"
    user_bob="bobsecret";
};
Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="bob"
    password="bobsecret";
};
"""


def write(tmp_path: Path, text: str, name: str = "jaas.conf") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------- parse_jaas

def test_the_typical_zookeeper_file() -> None:
    assert parse_jaas(ZOOKEEPER_JAAS) == {
        "Server": [LoginModule(DIGEST, "required",
                               {"user_super": "adminsecret", "user_bob": "bobsecret"})],
        "Client": [LoginModule(DIGEST, "required",
                               {"username": "bob", "password": "bobsecret"})],
    }


def test_digest_users_reads_the_server_section(tmp_path: Path) -> None:
    path = write(tmp_path, ZOOKEEPER_JAAS)
    assert DEFAULT_SERVER_SECTION == "Server"
    assert digest_users(path) == {"super": "adminsecret", "bob": "bobsecret"}
    assert digest_users(str(path), "Server") == {"super": "adminsecret", "bob": "bobsecret"}


def test_comments_of_every_kind_are_skipped() -> None:
    text = """\
// the ZooKeeper port's users
# written by hand
/* a comment
   over lines, with "quotes" and { braces }; */
Server { // after the brace
    org.apache.zookeeper.server.auth.DigestLoginModule /* between */ required
    # between options
    user_bob="bob//secret#1" // not part of the value
    user_alice="/*alice*/";
}; /* trailing */ # and more
"""
    assert parse_jaas(text) == {"Server": [LoginModule(
        DIGEST, "required", {"user_bob": "bob//secret#1", "user_alice": "/*alice*/"})]}


def test_unquoted_values() -> None:
    text = f"Server {{ {DIGEST} required user_bob=bobsecret user_carol=c.a-r$o_l:7; }};"
    assert parse_jaas(text)["Server"][0].options == {"user_bob": "bobsecret",
                                                     "user_carol": "c.a-r$o_l:7"}


def test_escaped_quotes_and_backslashes_in_quoted_values() -> None:
    text = rf'Server {{ {DIGEST} required user_bob="say \"hi\" \\o/" user_eve="a;b}}c"; }};'
    assert parse_jaas(text)["Server"][0].options == {"user_bob": 'say "hi" \\o/',
                                                     "user_eve": "a;b}c"}


def test_every_control_flag_in_any_case() -> None:
    text = """\
Login {
    a.One required;
    a.Two Requisite x=1;
    a.Three SUFFICIENT;
    a.Four optional y="2";
};
"""
    assert parse_jaas(text) == {"Login": [
        LoginModule("a.One", "required"),
        LoginModule("a.Two", "requisite", {"x": "1"}),
        LoginModule("a.Three", "sufficient"),
        LoginModule("a.Four", "optional", {"y": "2"}),
    ]}


def test_users_of_several_digest_modules_are_merged(tmp_path: Path) -> None:
    """As ZooKeeper's SaslServerCallbackHandler collects user_ options of every entry."""
    path = write(tmp_path, f"""\
Server {{
    {DIGEST} required user_bob="bobsecret";
    {DIGEST} optional user_alice="alicesecret" debug=true;
}};
""")
    assert digest_users(path) == {"bob": "bobsecret", "alice": "alicesecret"}


def test_empty_and_comment_only_files_have_no_sections() -> None:
    assert parse_jaas("") == {}
    assert parse_jaas("// nothing\n# here\n/* at all */\n") == {}


# ------------------------------------------------------------------------------ JAAS errors

def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the JAAS file .*absent\.conf"):
        digest_users(tmp_path / "absent.conf")


def test_a_missing_section_lists_the_sections_there_are(tmp_path: Path) -> None:
    path = write(tmp_path, ZOOKEEPER_JAAS.replace("Server {", "QuorumServer {"))
    with pytest.raises(ConfigError,
                       match=r"has no 'Server' section \(it has: Client, QuorumServer\)"):
        digest_users(path)
    with pytest.raises(ConfigError, match=r"has no 'Server' section \(it has: none\)"):
        digest_users(write(tmp_path, "// no sections\n", "empty.conf"))


def test_a_kerberos_section_is_not_supported(tmp_path: Path) -> None:
    path = write(tmp_path, """\
Server {
    com.sun.security.auth.module.Krb5LoginModule required
    useKeyTab=true
    keyTab="/etc/zookeeper/zk.keytab"
    storeKey=true
    principal="zookeeper/zk1.example.com@EXAMPLE.COM";
};
""")
    with pytest.raises(ConfigError, match=r"Krb5LoginModule is not supported.*Kerberos/GSSAPI"):
        digest_users(path)


def test_a_section_without_users(tmp_path: Path) -> None:
    path = write(tmp_path, ZOOKEEPER_JAAS)
    with pytest.raises(ConfigError, match=r"section 'Client' names no users"):
        digest_users(path, "Client")
    with pytest.raises(ConfigError, match=r"section 'Server' names no users"):
        digest_users(write(tmp_path, "Server { };", "empty-section.conf"))


@pytest.mark.parametrize(("text", "match"), [
    pytest.param(f"Server {{\n  {DIGEST}\n  mandatory user_bob=\"x\";\n}};",
                 r"line 3: control flag must be one of required, requisite, sufficient, "
                 r"optional, got 'mandatory'", id="bad-flag"),
    pytest.param(f"Server {{\n {DIGEST} required\n user_bob=; user_alice=\"x\";\n}};",
                 r"line 3: expected a value for user_bob, got ';'", id="punctuation-value"),
    pytest.param(f"Server {{ {DIGEST} ; }};", r"control flag must be .*got ';'",
                 id="no-flag"),
    pytest.param(f"Server {{\n {DIGEST} required\n user_bob=\"bobsecret;\n}};",
                 r"jaas.conf line 3: unterminated quoted value", id="unterminated-quote"),
    pytest.param(f"Server {{ {DIGEST} required user_bob=\"x\"; }};\n/* never\nends\n",
                 r"line 2: unterminated /\* comment", id="unterminated-comment"),
    pytest.param(f"Server {{\n {DIGEST} required user_bob=\"x\"\n}};",
                 r"line 3: expected an option or ';' after .*DigestLoginModule, got '}'",
                 id="module-without-semicolon"),
    pytest.param(f"Server {{\n {DIGEST} required user_bob=\"x\";\n",
                 r"unexpected end of file, expected '}'", id="section-not-closed"),
    pytest.param(f"Server {{ {DIGEST} required user_bob=\"x\"; }}",
                 r"unexpected end of file, expected ';'", id="brace-without-semicolon"),
    pytest.param(f"Server {{ {DIGEST} required user_bob=\"x\"; }}\nClient {{ }};",
                 r"line 2: expected ';', got 'Client'", id="sections-run-together"),
    pytest.param(f"Server {DIGEST} required;", r"expected '\{', got '.*DigestLoginModule'",
                 id="no-open-brace"),
    pytest.param(f"Server {{ {DIGEST} required user_bob \"x\"; }};", r"expected '=', got 'x'",
                 id="option-without-equals"),
    pytest.param("; Server { };", r"expected a section name, got ';'", id="stray-semicolon"),
    pytest.param("Server { };\nClient { };\nServer { };", r"section 'Server' appears twice",
                 id="section-twice"),
])
def test_malformed_files_are_refused_with_the_problem_named(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_jaas(text, "jaas.conf")


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "Server { org.Foo maybe; };")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))} line 1: control flag"):
        digest_users(path)


# ------------------------------------------------------------------------ zoo.cfg SASL keys

@pytest.fixture
def jaas(tmp_path: Path) -> Path:
    return write(tmp_path, ZOOKEEPER_JAAS + f"""\
ZkServer {{
    {DIGEST} required user_carol="carolsecret";
}};
""")


@pytest.mark.parametrize("prefix", ["", "zookeeper."])
def test_the_login_config_key_names_the_jaas_file(jaas: Path, prefix: str) -> None:
    config = parse_zoo_cfg(f"{prefix}java.security.auth.login.config={jaas}\n")
    assert config.jaas_path == jaas
    assert config.sasl_server_section == "Server"
    assert config.service_config().sasl_users == {"super": "adminsecret", "bob": "bobsecret"}
    assert config.unknown_keys == {}


@pytest.mark.parametrize("key", ["zookeeper.sasl.serverconfig", "sasl.serverconfig"])
def test_another_server_section(jaas: Path, key: str) -> None:
    config = parse_zoo_cfg(f"java.security.auth.login.config={jaas}\n{key}=ZkServer\n")
    assert config.sasl_server_section == "ZkServer"
    assert config.service_config().sasl_users == {"carol": "carolsecret"}


def test_without_a_jaas_file_sasl_is_not_configured() -> None:
    config = parse_zoo_cfg("tickTime=2000\n")
    assert config.jaas_path is None
    assert config.required_auth_schemes() == frozenset()
    service = config.service_config()
    assert service.sasl_users is None
    assert service.sasl_super_user is None
    assert service.enforce_auth_schemes == frozenset()
    assert service.allow_sasl_failed_clients is False


@pytest.mark.parametrize("prefix", ["", "zookeeper."])
def test_service_config_carries_every_sasl_setting(jaas: Path, prefix: str) -> None:
    config = parse_zoo_cfg(f"""\
java.security.auth.login.config={jaas}
{prefix}superUser=super
{prefix}enforce.auth.enabled=true
{prefix}enforce.auth.schemes= sasl, digest ,
{prefix}allowSaslFailedClients=true
""")
    assert config.sasl_super_user == "super"
    assert config.enforce_auth_enabled is True
    assert config.enforce_auth_schemes == {"sasl", "digest"}
    assert config.allow_sasl_failed_clients is True
    assert config.required_auth_schemes() == {"sasl", "digest"}
    service = config.service_config()
    assert service.sasl_users == {"super": "adminsecret", "bob": "bobsecret"}
    assert service.sasl_super_user == "super"
    assert service.enforce_auth_schemes == {"sasl", "digest"}
    assert service.allow_sasl_failed_clients is True


@pytest.mark.parametrize("prefix", ["", "zookeeper."])
def test_session_require_client_sasl_auth_means_sasl(jaas: Path, prefix: str) -> None:
    config = parse_zoo_cfg(f"java.security.auth.login.config={jaas}\n"
                           f"{prefix}sessionRequireClientSASLAuth=true\n")
    assert config.session_require_client_sasl_auth is True
    assert config.required_auth_schemes() == {"sasl"}
    assert config.service_config().enforce_auth_schemes == {"sasl"}


def test_session_require_client_sasl_auth_overrides_enforce_auth_schemes(jaas: Path) -> None:
    """ZooKeeper's AuthenticationHelper reads enforce.auth.* only when
    sessionRequireClientSASLAuth is false."""
    config = parse_zoo_cfg(f"java.security.auth.login.config={jaas}\n"
                           "sessionRequireClientSASLAuth=true\n"
                           "enforce.auth.enabled=true\nenforce.auth.schemes=digest\n")
    assert config.required_auth_schemes() == {"sasl"}


def test_enforce_auth_schemes_count_only_when_enabled() -> None:
    assert parse_zoo_cfg("enforce.auth.schemes=digest\n").required_auth_schemes() == frozenset()
    enabled = parse_zoo_cfg("enforce.auth.enabled=yes\nenforce.auth.schemes=digest,ip\n")
    assert enabled.required_auth_schemes() == {"digest", "ip"}
    assert NodeConfig(enforce_auth_schemes=frozenset({"ip"})).required_auth_schemes() == set()


def test_the_sasl_authentication_provider_line_is_accepted(jaas: Path) -> None:
    """ZooKeeper needs authProvider.N for its sasl scheme; zoolog always has it, so the line
    changes nothing."""
    base = f"java.security.auth.login.config={jaas}\nsessionRequireClientSASLAuth=true\n"
    with_provider = parse_zoo_cfg(
        base + "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n")
    without = parse_zoo_cfg(base)
    assert dataclasses.replace(with_provider, unknown_keys={}) == without
    assert with_provider.required_auth_schemes() == {"sasl"}
    assert with_provider.service_config() == without.service_config()


@pytest.mark.parametrize("key", ["enforce.auth.enabled", "sessionRequireClientSASLAuth",
                                 "allowSaslFailedClients"])
def test_sasl_switches_need_a_yes_or_no(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}: expected yes/no, got 'maybe'"):
        parse_zoo_cfg(f"{key}=maybe\n")


# ------------------------------------------------------------------------ validate() errors

def test_enforce_auth_enabled_without_schemes() -> None:
    with pytest.raises(ConfigError, match=r"enforce\.auth\.schemes must name the schemes"):
        parse_zoo_cfg("enforce.auth.enabled=true\n")
    with pytest.raises(ConfigError, match=r"enforce\.auth\.schemes must name the schemes"):
        NodeConfig(enforce_auth_enabled=True).validate()


def test_session_require_client_sasl_auth_makes_enforce_keys_irrelevant(jaas: Path) -> None:
    """ZooKeeper's AuthenticationHelper reads no enforce.auth.* key once
    sessionRequireClientSASLAuth is true, so their absence is no error then."""
    config = parse_zoo_cfg(f"java.security.auth.login.config={jaas}\n"
                           "sessionRequireClientSASLAuth=true\nenforce.auth.enabled=true\n")
    assert config.required_auth_schemes() == frozenset({"sasl"})


def test_an_unknown_enforced_scheme(jaas: Path) -> None:
    with pytest.raises(ConfigError, match=r"enforce.auth.schemes: unknown scheme\(s\) kerberos"):
        parse_zoo_cfg(f"java.security.auth.login.config={jaas}\n"
                      "enforce.auth.enabled=true\nenforce.auth.schemes=sasl,kerberos\n")
    with pytest.raises(ConfigError, match=r"unknown scheme\(s\) kerberos, md5 "):
        NodeConfig(enforce_auth_enabled=True,
                   enforce_auth_schemes=frozenset({"md5", "kerberos"})).validate()


@pytest.mark.parametrize("lines", [
    pytest.param("sessionRequireClientSASLAuth=true\n", id="sessionRequireClientSASLAuth"),
    pytest.param("enforce.auth.enabled=true\nenforce.auth.schemes=digest,sasl\n",
                 id="enforce.auth.schemes"),
])
def test_sasl_required_without_a_jaas_file(lines: str) -> None:
    with pytest.raises(ConfigError, match="SASL authentication is required, but no JAAS file"):
        parse_zoo_cfg(lines)


def test_sasl_required_with_a_jaas_file_validates(jaas: Path) -> None:
    NodeConfig(jaas_path=jaas, session_require_client_sasl_auth=True).validate()
    config = NodeConfig(jaas_path=jaas, enforce_auth_enabled=True,
                        enforce_auth_schemes=frozenset({"sasl"}))
    config.validate()
    assert config.service_config().enforce_auth_schemes == {"sasl"}


def test_a_jaas_file_without_the_named_section(jaas: Path) -> None:
    with pytest.raises(ConfigError,
                       match=r"has no 'Zk' section \(it has: Client, Server, ZkServer\)"):
        parse_zoo_cfg(f"java.security.auth.login.config={jaas}\n"
                      "zookeeper.sasl.serverconfig=Zk\n")
    with pytest.raises(ConfigError, match=r"has no 'Server' section"):
        NodeConfig(jaas_path=write(jaas.parent, "Client { a.B required; };", "c.conf")).validate()


def test_a_jaas_file_that_cannot_be_read_or_parsed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the JAAS file"):
        parse_zoo_cfg(f"java.security.auth.login.config={tmp_path / 'absent.conf'}\n")
    broken = write(tmp_path, "Server { a.DigestLoginModule required user_bob=\"x\"; }")
    with pytest.raises(ConfigError, match="unexpected end of file, expected ';'"):
        NodeConfig(jaas_path=broken).validate()
