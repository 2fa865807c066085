"""Ticket search: by id, words, date, status, district, category and department.

Reads the ticket store: an id is one lookup; anything else walks the tickets received in the date
window, newest first, reading only the fields it filters on, and stops after `LIMIT` matches or `SCAN`
tickets (the page says how far it looked)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.console.reads import Reads
from shared.store import Ticket, names_a_ticket

LIMIT = 100
SCAN = 5_000
PAGE = 500
UTC_ZONE = ZoneInfo("UTC")
FIELDS = ("status", "text", "title", "district", "street", "category", "department", "received_at", "urgency")


@dataclass(frozen=True)
class Query:
    text: str = ""
    status: str = ""
    district: str = ""
    category: str = ""
    department: str = ""
    since: date | None = None
    until: date | None = None
    zone: ZoneInfo = UTC_ZONE

    @classmethod
    def of(cls, params: Mapping[str, str], zone: ZoneInfo) -> Query:
        def day(name: str) -> date | None:
            try:
                return date.fromisoformat(params.get(name, "")) if params.get(name) else None
            except ValueError:
                return None

        return cls(
            text=params.get("q", "").strip()[:200],
            status=params.get("status", "")[:40],
            district=params.get("district", "")[:64],
            category=params.get("category", "")[:64],
            department=params.get("department", "")[:64],
            since=day("from"),
            until=day("to"),
            zone=zone,
        )

    @property
    def given(self) -> bool:
        return any((self.text, self.status, self.district, self.category, self.department, self.since))

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        start = datetime.combine(self.since, time(), self.zone) if self.since else now - timedelta(days=3650)
        end = datetime.combine(self.until + timedelta(days=1), time(), self.zone) if self.until else now
        return start.astimezone(UTC), end.astimezone(UTC)

    def matches(self, t: Ticket) -> bool:
        if self.status and t.status != self.status:
            return False
        if self.district and t.district != self.district:
            return False
        if self.category and t.category != self.category:
            return False
        if self.department and t.department != self.department:
            return False
        if self.text:
            words = self.text.lower().split()
            haystack = f"{t.title or ''} {t.text or ''}".lower()
            return all(w in haystack for w in words)
        return True


@dataclass(frozen=True)
class Found:
    tickets: list[Ticket]
    scanned: int
    complete: bool


async def search(reads: Reads, query: Query) -> Found:
    if query.text and names_a_ticket(query.text) and " " not in query.text:
        exact = await reads.store.get(query.text)
        if exact is not None:
            return Found([exact], 1, True)
    since, until = query.window(datetime.now(UTC))
    out: list[Ticket] = []
    scanned = 0
    while scanned < SCAN:
        ids = await reads.store.recent_ids(since, until, PAGE, offset=scanned, newest_first=True)
        if not ids:
            return Found(out, scanned, True)
        scanned += len(ids)
        for t in await reads.store.get_many(ids, fields=FIELDS):
            if t is not None and query.matches(t):
                out.append(t)
                if len(out) >= LIMIT:
                    return Found(out, scanned, False)
    return Found(out, scanned, False)
