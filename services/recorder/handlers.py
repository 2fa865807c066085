"""What the recorder makes of what it reads, as plain functions: rows for PostgreSQL from stream entries
(events) and from the store's ticket hashes and histories (the current state)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json, to_json

from shared.codec import SUPPORTED_VERSION, PoisonError, event_json
from shared.events import STREAM_EVENTS, Event
from shared.store import REVISION_FIELD

# Kept in their own columns, so not again in the event's body.
EVENT_KEYS = ("event_id", "ticket_id", "occurred_at", "version")


# A row of `ticket_events`, in the order of EVENT_COLUMNS.
EventRow = tuple[str, datetime, str, str, int, str]

EVENT_COLUMNS = ("event_id", "occurred_at", "ticket_id", "stream", "version", "body")


def event_row(stream: str, fields: dict[bytes, bytes]) -> EventRow:
    """The row of one stream entry. Only the envelope every event shares is validated: the services that
    consume the stream validate the rest, and the record keeps the event as it was published. The JSON
    goes to PostgreSQL as it came; the database drops the envelope's keys from the body (`write_events`),
    which costs it less than parsing and writing the JSON again costs here."""
    raw = event_json(fields, STREAM_EVENTS[stream])
    try:
        envelope = Event.model_validate_json(raw)
        body = raw.decode()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise PoisonError(f"invalid event: {problems}") from None
    except UnicodeDecodeError as exc:
        raise PoisonError(f"invalid JSON: {exc}") from None
    if envelope.version > SUPPORTED_VERSION:
        raise PoisonError(f"unsupported schema version {envelope.version}")
    return (envelope.event_id, envelope.occurred_at, envelope.ticket_id, stream, envelope.version, body)


class BadSnapshotError(ValueError):
    """A ticket's state that no row can hold as it is (a field that does not parse as its column's type)."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "t", "yes"):
        return True
    if lowered in ("0", "false", "f", "no", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _json(value: str) -> str:
    from_json(value)  # refused here, with the field's name, rather than by the database for the batch
    return value


# PostgreSQL's `information_schema.columns.data_type` -> how the store's string becomes that type.
CONVERTERS: dict[str, Callable[[str], Any]] = {
    "text": str,
    "timestamp with time zone": datetime.fromisoformat,
    "double precision": float,
    "integer": int,
    "bigint": int,
    "smallint": int,
    "boolean": _bool,
    "jsonb": _json,
}

# Filled by the recorder, not from the hash.
NOT_FROM_STORE = ("ticket_id", "extra", "recorded_at")


@dataclass(frozen=True)
class TicketColumns:
    """The `tickets` table's columns (read from the database, so the recorder follows the migrations)."""

    names: tuple[str, ...]
    types: tuple[str, ...]
    # Worked out once, not for each row: a field's column and converter, and where the fixed ones go.
    _column: dict[str, tuple[int, Callable[[str], Any]]] = field(init=False, repr=False, compare=False)
    _required: tuple[tuple[str, int], ...] = field(init=False, repr=False, compare=False)
    received_at: int = field(init=False, repr=False, compare=False)  # the column of the partition key
    _ticket_id: int | None = field(init=False, repr=False, compare=False)
    _extra: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        column = {
            n: (i, CONVERTERS[t])
            for i, (n, t) in enumerate(zip(self.names, self.types, strict=True))
            if n not in NOT_FROM_STORE
        }
        required = tuple((n, column[n][0]) for n in ("received_at", REVISION_FIELD, "status") if n in column)
        object.__setattr__(self, "_column", column)
        object.__setattr__(self, "_required", required)
        object.__setattr__(self, "received_at", self.names.index("received_at"))
        for name in ("ticket_id", "extra"):
            object.__setattr__(self, f"_{name}", self.names.index(name) if name in self.names else None)

    @classmethod
    def of(cls, columns: Sequence[tuple[str, str]]) -> TicketColumns:
        kept = [(n, t) for n, t in columns if n != "recorded_at"]
        unknown = sorted({t for n, t in kept if n not in NOT_FROM_STORE and t not in CONVERTERS})
        if unknown:
            raise RuntimeError(f"tickets has columns of types the recorder cannot fill: {unknown}")
        return cls(tuple(n for n, _ in kept), tuple(t for _, t in kept))

    def row(self, ticket_id: str, fields: dict[str, str]) -> tuple[Any, ...]:
        """The row of a ticket hash: each field in its typed column, any other field in `extra`."""
        values: list[Any] = [None] * len(self.names)
        extra: dict[str, str] = {}
        for name, value in fields.items():
            if (column := self._column.get(name)) is None:
                if name not in NOT_FROM_STORE:  # a field named like them is not the ticket's
                    extra[name] = value
                continue
            try:
                values[column[0]] = column[1](value)
            except ValueError as exc:
                raise BadSnapshotError(f"{name}: {exc}") from None
        if self._ticket_id is not None:
            values[self._ticket_id] = ticket_id
        if self._extra is not None and extra:
            values[self._extra] = to_json(extra).decode()
        for name, at in self._required:
            if values[at] is None:
                raise BadSnapshotError(f"no {name}")
        return tuple(values)


HISTORY_COLUMNS = ("ticket_id", "position", "at", "status", "entry")


def history_rows(
    ticket_id: str, start: int, entries: Sequence[bytes], default_at: datetime
) -> list[tuple[Any, ...]]:
    """Rows of the history entries from position `start` on (an entry without a time takes `default_at`).
    An entry's JSON goes to PostgreSQL as the store has it (the database parses it into jsonb anyway)."""
    rows = []
    for position, raw in enumerate(entries, start):
        try:
            entry = from_json(raw)
            at = datetime.fromisoformat(entry["at"]) if entry.get("at") else default_at
            text = raw.decode()
        except (ValueError, TypeError, AttributeError) as exc:
            raise BadSnapshotError(f"history entry {position}: {exc}") from None
        status = entry.get("status")
        rows.append((ticket_id, position, at, status if isinstance(status, str) else None, text))
    return rows
