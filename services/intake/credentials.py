"""Bearer tokens and API keys: only their SHA-256 hashes are configured, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence


def token_hash(token: str) -> str:
    """What to put in the settings for a token (`python -c` this, or `sha256sum`)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Credentials:
    """Who a token belongs to: a department, an operator or an Open311 client, by name."""

    def __init__(self, hashes: Mapping[str, Sequence[str]]) -> None:
        self._entries = [(name, bytes.fromhex(h)) for name, hs in hashes.items() for h in hs]

    def identify(self, token: str | None) -> str | None:
        if not token:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        found = None
        # Every entry is compared, so the time taken does not tell which (or whether one) matched.
        for name, expected in self._entries:
            if hmac.compare_digest(expected, digest):
                found = name
        return found
