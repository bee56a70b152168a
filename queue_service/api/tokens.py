"""Bearer tokens: where they come from, and matching a presented token in constant time.

Tokens come from QUEUE_ADMIN_TOKEN (named "admin"), QUEUE_WORKER_TOKEN (named "worker")
and a TOML tokens file of named tokens:

    [[tokens]]
    name = "alice"                 # shows up in audit events
    role = "admin"                 # "admin" or "worker"
    token = "a-long-random-secret"

    [[tokens]]
    name = "billing-workers"
    role = "worker"
    sha256 = "<hex SHA-256 of the token>"   # instead of `token`, to keep the secret out of the file

Only SHA-256 digests are kept in memory; a token itself is never stored, printed or logged.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
ENV_TOKENS = {"QUEUE_ADMIN_TOKEN": ("admin", "admin"), "QUEUE_WORKER_TOKEN": ("worker", "worker")}


class TokenError(ValueError):
    """A token or the tokens file is unusable; the message says which and why, never the secret."""


class Role(enum.StrEnum):
    WORKER = "worker"
    ADMIN = "admin"


@dataclass(frozen=True)
class NamedToken:
    name: str
    role: Role
    digest: bytes = field(repr=False)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise TokenError(f"{where}: name must be 1 to 100 letters, digits or _.@+- characters")
    return name


def check_role(role: Any, where: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise TokenError(f"{where}: role must be one of {', '.join(r.value for r in Role)}") from None


def check_secret(token: Any, where: str) -> bytes:
    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(f"{where}: token must be at least {MIN_TOKEN_LENGTH} characters")
    if not token.isprintable() or any(char.isspace() for char in token):
        raise TokenError(f"{where}: token must be printable and contain no whitespace")
    return digest(token)


def check_sha256(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise TokenError(f"{where}: sha256 must be 64 hexadecimal characters")
    return bytes.fromhex(value)


class TokenSet:
    """The configured tokens; empty means authentication is off."""

    def __init__(self, tokens: Iterable[NamedToken] = ()) -> None:
        self.tokens: tuple[NamedToken, ...] = tuple(tokens)
        names = [token.name for token in self.tokens]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise TokenError(f"token names must be unique; repeated: {', '.join(duplicates)}")
        digests = [token.digest for token in self.tokens]
        if len(set(digests)) != len(digests):
            raise TokenError("two named tokens share the same secret; give each name its own token")

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"TokenSet({', '.join(f'{t.name}:{t.role}' for t in self.tokens)})"

    def authenticate(self, presented: str) -> NamedToken | None:
        """The token matching `presented`, comparing digests against every token without stopping early."""
        candidate = digest(presented)
        found = None
        for token in self.tokens:
            if hmac.compare_digest(token.digest, candidate):
                found = token
        return found


def tokens_from_env(environ: Mapping[str, str]) -> list[NamedToken]:
    tokens = []
    for variable, (name, role) in ENV_TOKENS.items():
        value = environ.get(variable)
        if value:
            tokens.append(NamedToken(name, Role(role), check_secret(value, variable)))
    return tokens


def read_tokens_file(path: str | Path) -> list[NamedToken]:
    path = Path(path)
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as error:
        raise TokenError(f"cannot read tokens file {path}: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("tokens file %s is readable by other users; chmod 600 it", path)
    try:
        document = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise TokenError(f"tokens file {path} is not valid TOML: {error}") from None
    entries = document.get("tokens")
    unknown = sorted(set(document) - {"tokens"})
    if unknown:
        raise TokenError(f"tokens file {path}: unknown top-level keys {', '.join(unknown)}; expected [[tokens]] tables")
    if not isinstance(entries, list) or not entries:
        raise TokenError(f"tokens file {path} has no [[tokens]] entries")
    return [parse_entry(entry, f"{path}: tokens[{index}]") for index, entry in enumerate(entries)]


def parse_entry(entry: Any, where: str) -> NamedToken:
    if not isinstance(entry, dict):
        raise TokenError(f"{where} must be a table with name, role and token")
    unknown = sorted(set(entry) - {"name", "role", "token", "sha256"})
    if unknown:
        raise TokenError(f"{where}: unknown keys {', '.join(unknown)}")
    name = check_name(entry.get("name"), where)
    where = f"{where} ({name})"
    role = check_role(entry.get("role"), where)
    if ("token" in entry) == ("sha256" in entry):
        raise TokenError(f"{where}: give exactly one of token or sha256")
    secret = check_secret(entry["token"], where) if "token" in entry else check_sha256(entry["sha256"], where)
    return NamedToken(name, role, secret)


def load_tokens(environ: Mapping[str, str], tokens_file: str | Path | None = None) -> TokenSet:
    """Tokens from QUEUE_ADMIN_TOKEN, QUEUE_WORKER_TOKEN and the tokens file together."""
    tokens = tokens_from_env(environ)
    if tokens_file:
        tokens.extend(read_tokens_file(tokens_file))
    return TokenSet(tokens)
