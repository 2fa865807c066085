"""Caller numbers never leave intake: a keyed hash links repeat callers, a masked form is shown."""

from __future__ import annotations

import hashlib
import hmac
import re

from shared.events import CallerRef


def caller_ref(number: str, key: bytes) -> CallerRef:
    digits = re.sub(r"\D", "", number)
    digest = hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()[:32]
    masked = "*" * max(0, len(digits) - 4) + digits[-4:] if digits else "****"
    return CallerRef(hash=digest, masked=masked)
