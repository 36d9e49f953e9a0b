"""Znode path rules, as ZooKeeper's `PathUtils.validatePath` applies them.

A path is absolute, has no empty, "." or ".." component, no trailing "/" (except "/" itself) and
no NUL, control, surrogate or private-use characters. Sequential creates validate the path with a
digit appended, so "/queue/" may be the base of a sequential name.
"""

from __future__ import annotations

import re

from zoolog.coord.errors import Code, ZkError

_BAD_CHARS = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff]")


_VALID_CACHE: set[str] = set()
_VALID_CACHE_MAX = 1 << 16


def validate_path(path: str) -> None:
    """Raise ZkError(BADARGUMENTS) if `path` is not a valid znode path.

    Paths found valid are remembered (a bounded set, emptied when full): the hot writes name
    the same paths again and again."""
    if path in _VALID_CACHE:
        return
    _check_path(path)
    if len(_VALID_CACHE) >= _VALID_CACHE_MAX:
        _VALID_CACHE.clear()
    _VALID_CACHE.add(path)


def _check_path(path: str) -> None:
    if not path or path[0] != "/":
        raise ZkError(Code.BADARGUMENTS, f"path must start with / : {path!r}")
    if len(path) == 1:
        return
    if path[-1] == "/":
        raise ZkError(Code.BADARGUMENTS, f"path must not end with / : {path!r}")
    if "//" in path:
        raise ZkError(Code.BADARGUMENTS, f"empty node name in {path!r}")
    if _BAD_CHARS.search(path):
        raise ZkError(Code.BADARGUMENTS, f"invalid character in {path!r}")
    for name in path.split("/")[1:]:
        if name in (".", ".."):
            raise ZkError(Code.BADARGUMENTS, f"relative path component in {path!r}")


def parent_of(path: str) -> str:
    """The parent path ("/" for top-level nodes). `path` must contain a "/"."""
    cut = path.rindex("/")
    return path[:cut] if cut > 0 else "/"


def name_of(path: str) -> str:
    """The last component of `path`."""
    return path[path.rindex("/") + 1 :]


def join(parent: str, name: str) -> str:
    return parent + name if parent == "/" else parent + "/" + name


def ancestors(path: str) -> list[str]:
    """`path` itself and every ancestor up to "/", nearest first."""
    out = [path]
    while path != "/":
        path = parent_of(path)
        out.append(path)
    return out
