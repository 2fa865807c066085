"""Repeats of open tickets: same place, same category, similar text, within a window.

Text similarity is the Jaccard similarity of character-bigram sets, estimated from MinHash signatures
(64 multiply-shift hashes; the estimate's standard error is at most 0.0625), so a ticket keeps a 256-byte
signature instead of its shingles.

State in Redis, written with the classification (the same idempotent store script, atomic with the XACK):
a sorted set per (district, category) of the tickets that could be repeated (member: ticket id, score:
received_at), and the signature on the ticket's hash (`dup_sig`). Duplicates themselves are not indexed, so
a chain of repeats links to the first ticket. The wiring reads candidates per batch (`DuplicateIndex`); the
decision (`find_original`) is a pure function.

A ticket can only repeat one received before it (ties broken by ticket id): a redelivered ticket never
becomes a duplicate of itself, and two tickets never point at each other.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
from redis.asyncio import Redis

from services.classifier.text import normalize
from shared.bus import RoundTrip, as_str
from shared.effects import Expire, Op, SortedAdd, SortedTrimBelow
from shared.status import CLOSED
from shared.store import PREFIX, keys

PERMUTATIONS = 64
SIGNATURE_FIELD = "dup_sig"
_rng = np.random.default_rng(20261128)
# Multiply-shift hashing: h(x) = ((a*x + b) mod 2^64) >> 32 with odd a; numpy's uint64 arithmetic wraps.
_A = _rng.integers(1, 2**63, size=PERMUTATIONS, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_B = _rng.integers(0, 2**63, size=PERMUTATIONS, dtype=np.uint64)
_SHIFT = np.uint64(32)

Signature = npt.NDArray[np.uint32]
Bucket = tuple[str, str]  # (district, category)


@dataclass(frozen=True)
class Policy:
    window_seconds: float
    threshold: float
    max_candidates: int


@dataclass(frozen=True)
class Candidate:
    """A ticket a new one may repeat, as read from the index (or an earlier ticket of the same batch)."""

    ticket_id: str
    received_at: float  # epoch seconds
    street: str | None
    signature: Signature
    open: bool = True


@dataclass(frozen=True)
class Match:
    ticket_id: str
    similarity: float


def signature(text: str) -> Signature:
    # A bigram as one integer (two 21-bit code points), hashed by every permutation at once.
    points = np.frombuffer(normalize(text).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(points) >= 2:
        shingles = np.unique((points[:-1] << np.uint64(21)) | points[1:])
    else:  # a one-character (or empty) text is its own single shingle
        shingles = points if len(points) else np.zeros(1, dtype=np.uint64)
    mixed = (shingles[:, None] * _A[None, :] + _B[None, :]) >> _SHIFT
    result: Signature = mixed.min(axis=0).astype(np.uint32)
    return result


def similarity(a: Signature, b: Signature) -> float:
    return float(np.mean(a == b))


def encode_signature(sig: Signature) -> str:
    return base64.b64encode(sig.astype("<u4").tobytes()).decode()


def decode_signature(value: str | bytes) -> Signature | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    if len(raw) != 4 * PERMUTATIONS:
        return None
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


def bucket_key(bucket: Bucket) -> str:
    district, category = bucket
    return f"{PREFIX}:dupes:{district}:{category}"


def find_original(
    ticket_id: str,
    received_at: float,
    street: str | None,
    sig: Signature,
    candidates: Iterable[Candidate],
    policy: Policy,
) -> Match | None:
    """The open ticket this one repeats (the most similar, then the earliest), or None."""
    eligible = [
        c
        for c in candidates
        if c.open
        and (c.received_at, c.ticket_id) < (received_at, ticket_id)
        and received_at - c.received_at <= policy.window_seconds
        and (street is None or c.street is None or street == c.street)
    ]
    if not eligible:
        return None
    # Every candidate's similarity in one array operation: a batch can hold hundreds of candidates.
    scores = (np.stack([c.signature for c in eligible]) == sig).mean(axis=1)
    best = max(range(len(eligible)), key=lambda i: (scores[i], -eligible[i].received_at))
    if scores[best] < policy.threshold:
        return None
    return Match(eligible[best].ticket_id, round(float(scores[best]), 4))


def index_ops(bucket: Bucket, ticket_id: str, received_at: datetime, policy: Policy) -> list[Op]:
    """Store ops that make a ticket a candidate, and drop what has left the window."""
    key = bucket_key(bucket)
    at = received_at.timestamp()
    return [
        SortedAdd(key, ticket_id, at),
        SortedTrimBelow(key, at - policy.window_seconds),
        Expire(key, int(policy.window_seconds) + 3600),
    ]


class DuplicateIndex:
    """Reads the candidates of a batch's buckets: two pipelined round trips, whatever the batch size."""

    def __init__(self, redis: Redis, policy: Policy) -> None:
        self.redis = redis
        self.policy = policy

    async def candidates(self, wanted: dict[Bucket, float]) -> dict[Bucket, list[Candidate]]:
        """For each bucket, its most recent `max_candidates` tickets received since `wanted[bucket]`."""
        if not wanted:
            return {}
        buckets = list(wanted)
        async with self.redis.pipeline(transaction=False) as pipe:
            for b in buckets:
                pipe.zrevrangebyscore(
                    bucket_key(b),
                    "+inf",
                    wanted[b],
                    start=0,
                    num=self.policy.max_candidates,
                    withscores=True,
                )
            listed: list[list[tuple[bytes, float]]] = await pipe.execute()
        ids = sorted({as_str(member) for rows in listed for member, _ in rows})
        if not ids:
            return {b: [] for b in buckets}
        trip = RoundTrip(self.redis, transaction=False)
        for ticket_id in ids:
            trip.command("HMGET", keys.ticket(ticket_id), "status", "street", SIGNATURE_FIELD)
        found = dict(zip(ids, await trip.execute(), strict=True))
        out: dict[Bucket, list[Candidate]] = {}
        for b, rows in zip(buckets, listed, strict=True):
            out[b] = []
            for member, score in rows:
                status, street, raw_sig = found[as_str(member)]
                sig = decode_signature(raw_sig) if raw_sig else None
                if sig is None:
                    continue  # the ticket is gone (or its signature unreadable): nothing to compare with
                out[b].append(
                    Candidate(
                        ticket_id=as_str(member),
                        received_at=float(score),
                        street=as_str(street) if street else None,
                        signature=sig,
                        open=(as_str(status) if status else "") not in CLOSED,
                    )
                )
        return out


def earliest_needed(entries: Sequence[tuple[Bucket, float]], window_seconds: float) -> dict[Bucket, float]:
    """Per bucket, the oldest received_at any of the batch's tickets could still repeat."""
    wanted: dict[Bucket, float] = {}
    for bucket, at in entries:
        wanted[bucket] = min(wanted.get(bucket, float("inf")), at - window_seconds)
    return wanted
