"""Ticket search: by id, words, date, status, district, category and department.

An id Redis holds is one lookup there. Otherwise the record's search (services/console/history.py)
answers when PostgreSQL is configured and reachable, and this is the fallback on the ticket store: it walks
the tickets received in the date window, newest first, reading only the fields it filters on, and stops
after `LIMIT` matches or `SCAN` tickets (the page says how far it looked)."""

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
    def fields(self) -> tuple[str, ...]:
        """What the filters read, `status` first (a missing ticket has none)."""
        wanted = ["status", *(f for f in ("district", "category", "department") if getattr(self, f))]
        return (*wanted, "title", "text") if self.text else tuple(wanted)

    @property
    def given(self) -> bool:
        return any((self.text, self.status, self.district, self.category, self.department, self.since))

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        start = datetime.combine(self.since, time(), self.zone) if self.since else now - timedelta(days=3650)
        end = datetime.combine(self.until + timedelta(days=1), time(), self.zone) if self.until else now
        return start.astimezone(UTC), end.astimezone(UTC)

    def matches(self, t: Mapping[str, str | None]) -> bool:
        """Whether a ticket's fields (as stored: text, or None when unset) pass every filter."""
        for name in ("status", "district", "category", "department"):
            wanted = getattr(self, name)
            if wanted and t.get(name) != wanted:
                return False
        if self.text:
            haystack = f"{t.get('title') or ''} {t.get('text') or ''}".lower()
            return all(w in haystack for w in self.text.lower().split())
        return True


@dataclass(frozen=True)
class Found:
    tickets: list[Ticket]
    scanned: int
    complete: bool  # False: the scan stopped at `SCAN` tickets, before `LIMIT` matches or the window's end


async def exact(reads: Reads, query: Query) -> Found | None:
    """A single word that is the id of a ticket Redis holds: that ticket, whichever search follows (the
    record may not have a new ticket yet). Redis only: with PostgreSQL away this must still answer."""
    if not (query.text and " " not in query.text and names_a_ticket(query.text)):
        return None
    (ticket,) = await reads.store.get_many([query.text], fields=FIELDS, rehydrate=False)
    return Found([ticket], 1, True) if ticket is not None else None


async def search(reads: Reads, query: Query) -> Found:
    """Walk the newest tickets of the window in Redis (at most `SCAN`) for `LIMIT` matches."""
    since, until = query.window(datetime.now(UTC))
    out: list[Ticket] = []
    scanned = 0
    complete = False
    while scanned < SCAN and len(out) < LIMIT:
        ids = await reads.store.recent_ids(since, until, PAGE, offset=scanned, newest_first=True)
        if not ids:
            complete = True
            break
        scanned += len(ids)
        # Filtered on the raw fields it needs (the texts only when words are asked for); only the
        # matches are read whole.
        hits = [
            ticket_id
            for ticket_id, values in await reads.fields(ids, query.fields)
            if values[0] is not None and query.matches(dict(zip(query.fields, values, strict=True)))
        ]
        wanted = hits[: LIMIT - len(out)]
        out += [t for t in await reads.store.get_many(wanted, fields=FIELDS, rehydrate=False) if t]
    return Found(out, scanned, complete or len(out) >= LIMIT)
