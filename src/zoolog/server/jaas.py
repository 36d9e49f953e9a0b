"""JAAS login configuration files, as ZooKeeper's servers and clients read them.

    Server {
        org.apache.zookeeper.server.auth.DigestLoginModule required
        user_super="adminsecret"
        user_bob="bobsecret";
    };

A file holds named sections; each lists login modules (class, control flag, options) ending
with `;`, and the section ends with `};`. Values are quoted strings or bare words; `//` and
`/* */` comments are skipped. zoolog's ZooKeeper port serves DIGEST-MD5, so of a server
section it uses the `user_NAME="password"` options of a DigestLoginModule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from zoolog.errors import ConfigError

FLAGS = ("required", "requisite", "sufficient", "optional")
DIGEST_LOGIN_MODULE = "org.apache.zookeeper.server.auth.DigestLoginModule"
DEFAULT_SERVER_SECTION = "Server"
"""ZooKeeper's default (`zookeeper.sasl.serverconfig`)."""


@dataclass(frozen=True)
class LoginModule:
    class_name: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)


def _tokens(text: str, source: str) -> list[tuple[str, bool, int]]:
    """(token, quoted, line) for words, quoted strings and the punctuation `{ } ; =`."""
    out: list[tuple[str, bool, int]] = []
    i, n, line = 0, len(text), 1
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch.isspace():
            i += 1
        elif text.startswith("//", i) or ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ConfigError(f"{source} line {line}: unterminated /* comment")
            line += text.count("\n", i, end)
            i = end + 2
        elif ch in "{};=":
            out.append((ch, False, line))
            i += 1
        elif ch == '"':
            value: list[str] = []
            i += 1
            opened = line
            while True:
                if i >= n:
                    raise ConfigError(f"{source} line {opened}: unterminated quoted value")
                if text[i] == "\\" and i + 1 < n:
                    value.append(text[i + 1])
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    if text[i] == "\n":
                        line += 1
                    value.append(text[i])
                    i += 1
            out.append(("".join(value), True, line))
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in '{};="':
                i += 1
            out.append((text[start:i], False, line))
    return out


def parse_jaas(text: str, source: str = "JAAS file") -> dict[str, list[LoginModule]]:
    """Every section of a JAAS login configuration, by name."""
    tokens = _tokens(text, source)
    sections: dict[str, list[LoginModule]] = {}
    pos = 0

    def take(expected: str | None = None) -> tuple[str, bool, int]:
        nonlocal pos
        if pos >= len(tokens):
            raise ConfigError(f"{source}: unexpected end of file"
                              + (f", expected {expected!r}" if expected else ""))
        token = tokens[pos]
        pos += 1
        if expected is not None and (token[0] != expected or token[1]):
            raise ConfigError(f"{source} line {token[2]}: expected {expected!r}, "
                              f"got {token[0]!r}")
        return token

    while pos < len(tokens):
        name, _, line = take()
        if name in "{};=":
            raise ConfigError(f"{source} line {line}: expected a section name, got {name!r}")
        take("{")
        modules: list[LoginModule] = []
        while pos < len(tokens) and tokens[pos][0] != "}":
            class_name, _, line = take()
            flag, _, flag_line = take()
            if flag.lower() not in FLAGS:
                raise ConfigError(f"{source} line {flag_line}: control flag must be one of "
                                  f"{', '.join(FLAGS)}, got {flag!r}")
            options: dict[str, str] = {}
            while True:
                key, quoted, key_line = take()
                if key == ";" and not quoted:
                    break
                if key in "{}=" and not quoted:
                    raise ConfigError(f"{source} line {key_line}: expected an option or ';' "
                                      f"after {class_name}, got {key!r}")
                take("=")
                value, quoted, value_line = take()
                if value in "{};=" and not quoted:
                    raise ConfigError(f"{source} line {value_line}: expected a value for "
                                      f"{key}, got {value!r}")
                options[key] = value
            modules.append(LoginModule(class_name, flag.lower(), options))
        take("}")
        take(";")
        if name in sections:
            raise ConfigError(f"{source}: section {name!r} appears twice")
        sections[name] = modules
    return sections


def digest_users(path: str | Path, section: str = DEFAULT_SERVER_SECTION) -> dict[str, str]:
    """The DIGEST-MD5 users (`user_NAME="password"`) of a JAAS file's server section."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the JAAS file {path}: {exc}") from exc
    sections = parse_jaas(text, str(path))
    if section not in sections:
        raise ConfigError(f"JAAS file {path} has no {section!r} section (it has: "
                          f"{', '.join(sorted(sections)) or 'none'})")
    users: dict[str, str] = {}
    for module in sections[section]:
        if module.class_name.rsplit(".", 1)[-1] != "DigestLoginModule":
            raise ConfigError(
                f"JAAS file {path}, section {section!r}: {module.class_name} is not supported; "
                f"zoolog serves SASL DIGEST-MD5 with {DIGEST_LOGIN_MODULE} (Kerberos/GSSAPI "
                "is not supported)")
        for key, value in module.options.items():
            if key.startswith("user_") and len(key) > len("user_"):
                users[key.removeprefix("user_")] = value
    if not users:
        raise ConfigError(f"JAAS file {path}, section {section!r} names no users "
                          '(user_NAME="password")')
    return users
