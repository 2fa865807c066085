"""Deterministic identifiers, so that a retried step republishes the same ids."""

from __future__ import annotations

import hashlib
import uuid

_NAMESPACE = uuid.UUID("6f1d3c52-8f0e-4b7a-9a57-2d1e0c4b9a11")
_PREFIX = _NAMESPACE.bytes


def _uuid5_hex(name: str) -> str:
    """`uuid.uuid5(_NAMESPACE, name).hex`, without building UUID objects (tested equal): ids are made
    for every event on the hot path."""
    digest = hashlib.sha1(_PREFIX + name.encode()).digest()
    version = (digest[6] & 0x0F) | 0x50  # version 5
    variant = (digest[8] & 0x3F) | 0x80  # RFC 4122
    return (digest[:6] + bytes((version,)) + digest[7:8] + bytes((variant,)) + digest[9:16]).hex()


def derive_id(*parts: str) -> str:
    """A stable id for the step named by `parts` (e.g. upstream event id + step name)."""
    h = _uuid5_hex("\x1f".join(parts))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def ticket_id_for(channel: str, source_id: str) -> str:
    """The ticket id for a provider's call or request id: the same upstream id gives the same ticket."""
    return "T" + _uuid5_hex(f"ticket\x1f{channel}\x1f{source_id}")[:15].upper()
