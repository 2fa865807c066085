"""Deterministic identifiers, so that a retried step republishes the same ids."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1d3c52-8f0e-4b7a-9a57-2d1e0c4b9a11")


def derive_id(*parts: str) -> str:
    """A stable id for the step named by `parts` (e.g. upstream event id + step name)."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def ticket_id_for(channel: str, source_id: str) -> str:
    """The ticket id for a provider's call or request id: the same upstream id gives the same ticket."""
    return "T" + uuid.uuid5(_NAMESPACE, f"ticket\x1f{channel}\x1f{source_id}").hex[:15].upper()
