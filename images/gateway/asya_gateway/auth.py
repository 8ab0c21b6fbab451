"""API keys: who may submit, read, resume, or administer envelopes through the gateway.

Keys are never stored in clear: the keys file (or the mounted Kubernetes Secret holding it) lists
``sha256`` hashes of the tokens with an id and scopes::

    keys:
      - id: alice
        sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        scopes: [submit, read, resume]

``python -m asya_gateway.auth --id alice --scopes submit,read`` prints a new token and its entry.
A record belongs to the key that submitted it; other keys (except ``admin``) get 404 for it. With no
keys configured, everyone is an anonymous admin, so the gateway refuses to bind beyond loopback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SCOPES = frozenset({"submit", "read", "resume", "admin"})
ANONYMOUS_ID = "anonymous"
_HEX = re.compile(r"^[0-9a-f]{64}$")


class ApiKeysError(ValueError):
    """The keys file is invalid; the message names the entry and the problem."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    key_id: str
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        """Admins see and act on every record."""
        return "admin" in self.scopes

    def allows(self, scope: str) -> bool:
        """True when the key holds ``scope`` (admin holds every scope)."""
        return self.is_admin or scope in self.scopes

    @property
    def owner(self) -> str | None:
        """The owner written on records this principal submits (None for the anonymous dev admin)."""
        return None if self.key_id == ANONYMOUS_ID else self.key_id


ANONYMOUS = Principal(ANONYMOUS_ID, frozenset(SCOPES))


def hash_token(token: str) -> str:
    """The stored form of a token: hex sha256 (tokens are 256-bit random, so no slow hash is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ApiKeys:
    """The configured keys, looked up by the hash of the presented token.

    Args:
        entries: ``{sha256 hex: Principal}``.
    """

    def __init__(self, entries: dict[str, Principal] | None = None):
        self._by_hash = dict(entries or {})

    @property
    def disabled(self) -> bool:
        """No keys configured: everyone is an anonymous admin (loopback binds only)."""
        return not self._by_hash

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal of ``token``, :data:`ANONYMOUS` when auth is disabled, else None."""
        if self.disabled:
            return ANONYMOUS
        if not token:
            return None
        return self._by_hash.get(hash_token(token))

    @classmethod
    def parse(cls, data: Any, source: str = "api keys") -> "ApiKeys":
        """Builds keys from parsed YAML/JSON (``{"keys": [...]}``).

        Raises:
            ApiKeysError: An entry is malformed.
        """
        items = data.get("keys") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ApiKeysError(f"{source}: expected a 'keys' list")
        entries: dict[str, Principal] = {}
        ids: set[str] = set()
        for index, item in enumerate(items):
            where = f"{source}: keys[{index}]"
            if not isinstance(item, dict) or set(item) - {"id", "sha256", "scopes"}:
                raise ApiKeysError(f"{where} must be a mapping with id, sha256 and scopes only")
            key_id, digest, scopes = item.get("id"), str(item.get("sha256", "")).lower(), item.get("scopes")
            if not isinstance(key_id, str) or not key_id or key_id == ANONYMOUS_ID:
                raise ApiKeysError(f"{where}: id must be a non-empty string other than {ANONYMOUS_ID!r}")
            if key_id in ids:
                raise ApiKeysError(f"{where}: id {key_id!r} is used twice")
            if not _HEX.match(digest):
                raise ApiKeysError(f"{where} ({key_id}): sha256 must be 64 hex digits (the hash, never the token)")
            if not isinstance(scopes, list) or not scopes or set(scopes) - SCOPES:
                raise ApiKeysError(f"{where} ({key_id}): scopes must be a non-empty subset of {sorted(SCOPES)}")
            ids.add(key_id)
            entries[digest] = Principal(key_id, frozenset(scopes))
        return cls(entries)

    @classmethod
    def load(cls, path: str | Path | None) -> "ApiKeys":
        """Reads keys from a file, or every ``*.yaml``/``*.json`` file of a folder (a mounted Secret).

        An empty path means no keys (auth disabled).

        Raises:
            ApiKeysError: The file is missing, does not parse, or holds a bad entry.
        """
        if not path:
            return cls()
        path = Path(path)
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.is_file()) \
            if path.is_dir() else [path]
        if not files:
            raise ApiKeysError(f"no keys file (*.yaml, *.json) in {path}")
        merged: dict[str, Principal] = {}
        for file in files:
            try:
                data = yaml.safe_load(file.read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise ApiKeysError(f"cannot read API keys from {file}: {exc}") from None
            merged.update(cls.parse(data, str(file))._by_hash)
        if not merged:
            raise ApiKeysError(f"{path} lists no keys; unset ASYA_GATEWAY_API_KEYS to run without auth (loopback only)")
        return cls(merged)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def main(argv: list[str] | None = None) -> int:
    """``python -m asya_gateway.auth --id ID --scopes a,b``: prints a new token and its keys-file entry."""
    parser = argparse.ArgumentParser(prog="python -m asya_gateway.auth", description="create a gateway API key")
    parser.add_argument("--id", required=True, help="key id (the owner of the records it submits)")
    parser.add_argument("--scopes", default="submit,read", help=f"comma-separated subset of {sorted(SCOPES)}")
    args = parser.parse_args(argv)
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    if not scopes or set(scopes) - SCOPES:
        parser.error(f"--scopes must be a subset of {sorted(SCOPES)}")
    token = "asya_" + secrets.token_urlsafe(32)
    print(f"token (give it to the client, store it nowhere else): {token}")
    print("keys-file entry:")
    print(json.dumps({"id": args.id, "sha256": hash_token(token), "scopes": scopes}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
