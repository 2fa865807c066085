"""Caller numbers never leave intake: a keyed hash links repeat callers, a masked form is shown."""

from __future__ import annotations

import hmac
import re

from shared.events import CallerRef

_NOT_DIGIT = re.compile(r"\D")


def caller_ref(number: str, key: bytes) -> CallerRef:
    digits = _NOT_DIGIT.sub("", number)
    digest = hmac.digest(key, digits.encode(), "sha256").hex()[:32]
    masked = "*" * max(0, len(digits) - 4) + digits[-4:] if digits else "****"
    return CallerRef(hash=digest, masked=masked)
