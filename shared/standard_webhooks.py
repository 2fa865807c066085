"""Standard Webhooks signatures (webhook-id, webhook-timestamp, webhook-signature).

The signed content is `{id}.{timestamp}.{raw body}`, HMAC-SHA256 keyed with each configured secret
(several at once, for rotation), compared in constant time. Spec: standard-webhooks/standard-webhooks.
"""

from __future__ import annotations

import base64
import functools
import hmac
import time
from collections.abc import Mapping, Sequence

TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    pass


@functools.lru_cache(maxsize=64)
def secret_bytes(secret: str) -> bytes:
    """Secrets are `whsec_<base64>` as the spec writes them; anything else is taken as raw text."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    return secret.encode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.digest(secret_bytes(secret), f"{webhook_id}.{timestamp}.".encode() + body, "sha256")
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secret: str, webhook_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, webhook_id, ts, body),
    }


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Return the webhook id when a signature matches one secret; raise SignatureError otherwise."""
    webhook_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not webhook_id or not timestamp or not signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    # Compared, not subtracted: `current - ts` overflows a float for a timestamp of hundreds of digits.
    if not current - tolerance <= ts <= current + tolerance:
        raise SignatureError("webhook-timestamp outside the tolerance window")
    offered = [s.split(",", 1)[1] for s in signatures.split() if s.startswith("v1,")]
    if not offered:
        raise SignatureError("no v1 signature in webhook-signature")
    for secret in secrets:
        expected = sign(secret, webhook_id, ts, body).split(",", 1)[1]
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return webhook_id
    raise SignatureError("signature does not match")
