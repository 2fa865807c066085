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


# -- operations on keys beside the ticket: what a handler means, turned into commands by the store -----

Command = list[str | int | float]


@dataclass(frozen=True)
class Increment:
    """Add `by` to a counter in a hash (HINCRBY)."""

    key: str
    field: str
    by: int = 1

    def commands(self) -> list[Command]:
        return [["HINCRBY", self.key, self.field, self.by]]


@dataclass(frozen=True)
class HashSet:
    """Set one field of a hash (HSET)."""

    key: str
    field: str
    value: str

    def commands(self) -> list[Command]:
        return [["HSET", self.key, self.field, self.value]]


@dataclass(frozen=True)
class SortedAdd:
    """Put `member` in a sorted set at `score` (ZADD), moving it if it is there already."""

    key: str
    member: str
    score: float

    def commands(self) -> list[Command]:
        # repr: the shortest string that reads back as the same double, whatever JSON and Lua make of it
        return [["ZADD", self.key, repr(float(self.score)), self.member]]


@dataclass(frozen=True)
class SortedRemove:
    """Take `member` out of a sorted set (ZREM)."""

    key: str
    member: str

    def commands(self) -> list[Command]:
        return [["ZREM", self.key, self.member]]


@dataclass(frozen=True)
class SortedTrimBelow:
    """Drop the members of a sorted set scored below `score` (ZREMRANGEBYSCORE -inf (score)."""

    key: str
    score: float

    def commands(self) -> list[Command]:
        return [["ZREMRANGEBYSCORE", self.key, "-inf", f"({self.score!r}"]]


@dataclass(frozen=True)
class Expire:
    """Let a key live `seconds` more (EXPIRE): refreshed by each write to it."""

    key: str
    seconds: int

    def commands(self) -> list[Command]:
        return [["EXPIRE", self.key, self.seconds]]


@dataclass(frozen=True)
class ListPushCapped:
    """Push `value` at the head of a list and keep only the `keep` newest (LPUSH, LTRIM)."""

    key: str
    value: str
    keep: int

    def commands(self) -> list[Command]:
        return [["LPUSH", self.key, self.value], ["LTRIM", self.key, 0, self.keep - 1]]


@dataclass(frozen=True)
class StreamAdd:
    """Append an entry of flat fields to a stream capped near `maxlen` (XADD MAXLEN ~)."""

    key: str
    fields: dict[str, str]
    maxlen: int

    def commands(self) -> list[Command]:
        flat = [item for pair in self.fields.items() for item in pair]
        return [["XADD", self.key, "MAXLEN", "~", self.maxlen, "*", *flat]]


Op = Increment | HashSet | SortedAdd | SortedRemove | SortedTrimBelow | Expire | ListPushCapped | StreamAdd


@dataclass(frozen=True)
class StoreWrite:
    """An idempotent update of a ticket's projection, applied once per (consumer, event_id).

    `fields` set hash fields (None deletes one); `history` is appended to the ticket's history;
    `ops` change other keys (indexes, counters, queues) in the same script.
    """

    ticket_id: str
    event_id: str
    fields: dict[str, str | None] = field(default_factory=dict)
    history: dict[str, Any] | None = None
    ops: Sequence[Op] = ()

    def commands(self) -> list[Command]:
        return [c for op in self.ops for c in op.commands()]


@dataclass(frozen=True)
class Effects:
    publish: Sequence[Publish] = ()
    writes: Sequence[StoreWrite] = ()


NONE = Effects()

BatchHandler = Callable[[list[E]], Awaitable[list[Effects]]]
