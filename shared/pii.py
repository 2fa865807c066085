"""Personal data in free text: phone numbers, ID-card numbers and e-mail addresses are replaced by a
readable token before anything is stored, so a ticket, a stream entry, the AOF or a department's screen
never holds them. People say them in calls and type them in reports ("我的电话是13912345678", "来电人要求
回访 137-0000-3333"), and a callback may need the number: each masked phone is kept as a keyed hash (the
same HMAC as the caller's), which matches the number when the call centre has it, and reveals nothing
without the key.

The tokens are words ("[电话]", "[身份证]", "[邮箱]") so the classifier still reads that a number was given,
and patterns are narrow (a mobile, a landline with its area code, an ID number with a valid check digit),
so dates, amounts, house numbers and ticket ids stay as they were.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated

from pydantic import AfterValidator

from shared.events import CallerRef

PHONE = "[电话]"
ID_CARD = "[身份证]"
EMAIL = "[邮箱]"

# Not inside a longer number or an id (T2026…); Chinese text runs straight into numbers, so no word boundary.
_START = r"(?<![0-9A-Za-z])"
_END = r"(?!\d)"
_SEP = r"[ \t\-.\u00a0\u2010-\u2015]?"
_ID_18 = re.compile(_START + r"\d{17}[\dXx]" + _END)
_ID_15 = re.compile(_START + r"\d{15}" + _END)
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}" + _END
)
# A mobile: 1[3-9]x xxxx xxxx, with or without separators, with or without +86 / 0086 / (86).
_MOBILE = re.compile(
    rf"""{_START}
    (?: (?:\+|00)?\s?86{_SEP} | [(（]\+?86[)）]\s? )?
    1[3-9]\d {_SEP} \d{{4}} {_SEP} \d{{4}}
    {_END}""",
    re.VERBOSE,
)
# A landline with its area code (010, 021, 0755, 0571...): 0AA(A) then 7 or 8 digits, the code perhaps in
# brackets, +86 dropping its 0; an extension (-123, 转123) goes with it.
_LANDLINE = re.compile(
    rf"""{_START}
    (?: (?:\+|00)86{_SEP}[(（]?0?[)）]? | [(（]?0 )
    [1-9]\d{{1,2}} [)）]? {_SEP} \d{{3,4}} {_SEP} \d{{4}}
    (?: \s?(?:-|转|ext\.?\s?|x)\d{{1,5}} )?
    {_END}""",
    re.VERBOSE,
)
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_DIGITS = re.compile(r"\d")
# Some input methods type full-width digits (１３９…): read as ASCII so the patterns see the number.
_WIDE = "０１２３４５６７８９＋＠"
_HALF_WIDTH = str.maketrans(_WIDE, "0123456789+@")
_HAS_WIDE = re.compile(f"[{_WIDE}]")


@dataclass(frozen=True)
class Redacted:
    text: str
    phones: tuple[CallerRef, ...] = ()


def phone_ref(number: str, key: bytes) -> CallerRef:
    """A number as the system keeps it: the HMAC of its digits in national form (+86 139… and 139…, +86 10
    … and 010 … match) and its last four digits."""
    digits = "".join(_DIGITS.findall(number))
    for country in ("0086", "86"):
        if len(digits) > 11 and digits.startswith(country):
            digits = digits[len(country) :]
            # +86 drops a landline's trunk 0 (+86 10 …): put it back so it matches 010 ….
            if not (len(digits) == 11 and digits.startswith("1")):
                digits = "0" + digits
            break
    digest = hmac.digest(key, digits.encode(), "sha256").hex()[:32]
    masked = "*" * max(0, len(digits) - 4) + digits[-4:] if digits else "****"
    return CallerRef(hash=digest, masked=masked)


def _valid_id_18(number: str) -> bool:
    total = sum(int(d) * w for d, w in zip(number[:17], _WEIGHTS, strict=True))
    return _CHECK[total % 11] == number[17].upper() and _born(number[6:14])


def _born(yyyymmdd: str) -> bool:
    try:
        date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return 1900 <= int(yyyymmdd[:4]) <= 2100


def _id_card(number: str) -> bool:
    if len(number) == 18:
        return _valid_id_18(number)
    return _born("19" + number[6:12])


# In order: an ID number holds 11-digit runs that would look like a mobile. Each kind has a gate, a pattern
# every text it matches in also matches, and that the regex engine finds fast (a literal or a digit class
# first, no lookbehind): scanning every position with the lookbehinds cost ~70 µs a 360-character message,
# most of intake's masking; with the gates, a message with no candidate costs a few µs.
_ID_GATE = re.compile(r"\d{15}")
_KINDS: tuple[tuple[re.Pattern[str], str, re.Pattern[str]], ...] = (
    (_ID_18, ID_CARD, _ID_GATE),
    (_ID_15, ID_CARD, _ID_GATE),
    (_EMAIL, EMAIL, re.compile("@")),
    (_MOBILE, PHONE, re.compile(r"1[3-9]\d")),
    (_LANDLINE, PHONE, re.compile(r"\d{3}" + _SEP + r"\d{4}")),
)
_GATES = frozenset(gate for _, _, gate in _KINDS)


def redact(text: str, key: bytes | None = None) -> Redacted:
    """`text` with every phone number, ID-card number and e-mail address replaced by its token; with a
    `key`, the keyed hash of each phone number (in order, repeats once) for a callback. Matched on a
    half-width copy (one character for one, so the spans agree); the rest of the text is kept as it was."""
    # translate walks every character through a dict (~20 µs a message): only when there is one to change
    probe = text.translate(_HALF_WIDTH) if _HAS_WIDE.search(text) else text
    # Searched in the text as it comes: blanking what a kind matched only takes candidates from the next.
    open_gates = {gate for gate in _GATES if gate.search(probe)}
    spans: list[tuple[int, int, str]] = []
    for pattern, token, gate in _KINDS:
        if gate not in open_gates:
            continue
        for match in pattern.finditer(probe):
            if token == ID_CARD and not _id_card(match.group()):
                continue
            spans.append((match.start(), match.end(), token))
            # blanked so a later pattern cannot match inside what is already masked
            probe = probe[: match.start()] + "\0" * (match.end() - match.start()) + probe[match.end() :]
    if not spans:
        return Redacted(text)
    spans.sort()
    parts, at, phones = [], 0, []
    for start, end, token in spans:
        parts += [text[at:start], token]
        if token == PHONE:
            phones.append(text[start:end].translate(_HALF_WIDTH))
        at = end
    parts.append(text[at:])
    if key is None:
        return Redacted("".join(parts))
    refs: dict[str, CallerRef] = {}
    for number in phones:
        ref = phone_ref(number, key)
        refs.setdefault(ref.hash, ref)
    return Redacted("".join(parts), tuple(refs.values()))


def masked(text: str) -> str:
    """`text` with its personal data replaced (notes, comments: no callback is made from them)."""
    return redact(text).text


# A free-text field of a request model (notes, comments, reasons): masked as it is validated, so the raw
# value is gone before a handler sees it.
MaskedText = Annotated[str, AfterValidator(masked)]
