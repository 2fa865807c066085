"""What a handler wants done: the batch wiring applies effects and acks in one Redis transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.events import Event

E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class Publish:
    stream: str
    event: Event


@dataclass(frozen=True)
class StoreWrite:
    """An idempotent update of a ticket's projection, applied once per (consumer, event_id).

    `fields` set hash fields (None deletes one); `history` is appended to the ticket's history;
    `ops` are extra Redis commands (index and counter updates) applied in the same script.
    """

    ticket_id: str
    event_id: str
    fields: dict[str, str | None] = field(default_factory=dict)
    history: dict[str, Any] | None = None
    ops: list[list[str | int | float]] = field(default_factory=list)


@dataclass(frozen=True)
class Effects:
    publish: Sequence[Publish] = ()
    writes: Sequence[StoreWrite] = ()


NONE = Effects()

BatchHandler = Callable[[list[E]], Awaitable[list[Effects]]]
