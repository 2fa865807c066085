"""The routing table: who can fix a category in a district, how much they can take, and when they work.

The table is a YAML file (HOTLINE_ROUTING_PATH). It is validated as a whole when loaded: every problem is
reported with the file, the line and what is wrong, and a reload that fails keeps the table in use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta, tzinfo
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.taxonomy import ConfigError

log = logging.getLogger("hotline.dispatch.routing")

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ID = r"^[a-z][a-z0-9_]*$"


class WorkingHours(BaseModel):
    """When a department works, in the city's local time: `open` to `close` on `days` (24/7 by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: list[Weekday] = Field(default=list(WEEKDAYS), min_length=1)
    open: time = time(0, 0)
    close: time | None = Field(default=None, description="None: until midnight")

    @field_validator("close")
    @classmethod
    def _after_open(cls, value: time | None, info: Any) -> time | None:
        opening = info.data.get("open")
        if value is not None and opening is not None and value <= opening:
            raise ValueError("close must be after open (use no close for 'until midnight')")
        return value

    def hours_per_week(self) -> float:
        return len(set(self.days)) * self._day_hours()

    def _day_hours(self) -> float:
        end = 24.0 if self.close is None else self.close.hour + self.close.minute / 60
        return end - (self.open.hour + self.open.minute / 60)

    def _intervals(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open intervals from `start` (an aware local datetime) on, for up to 8 weeks."""
        for opens, closes, _ in self._schedule(start):
            if closes > start:
                yield max(opens, start), closes

    def _schedule(self, start: datetime) -> tuple[_Interval, ...]:
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        return _schedule(tuple(self.days), self.open, self.close, day.date(), day.tzinfo, day.fold)

    def is_open(self, at: datetime) -> bool:
        first = next(self._intervals(at), None)
        return first is not None and first[0] <= at

    def open_hours(self, start: datetime, end: datetime) -> float:
        """Working hours between `start` and `end` (aware local datetimes)."""
        total = 0.0
        for opens, closes, span in self._schedule(start):
            if closes <= start:
                continue
            if opens >= end:
                break
            if opens >= start and closes <= end:
                total += span / _HOUR
            else:
                total += (min(closes, end) - max(opens, start)).total_seconds() / 3600
        return total

    def finish(self, start: datetime, work_hours: float) -> datetime:
        """When `work_hours` of working time, begun at `start`, are done (working hours only)."""
        left = timedelta(hours=work_hours)
        last = start
        for opens, closes in self._intervals(start):
            if closes - opens >= left:
                return opens + left
            left -= closes - opens
            last = closes
        return last + left  # beyond the horizon: an estimate is all that is needed


_Interval = tuple[datetime, datetime, float]
_HOUR = 3600.0
_SCHEDULES: dict[tuple[object, ...], tuple[_Interval, ...]] = {}


def _schedule(
    days: tuple[Weekday, ...],
    opening: time,
    closing: time | None,
    first: date,
    zone: tzinfo | None,
    fold: int,
) -> tuple[_Interval, ...]:
    """The open intervals (opens, closes, seconds open) of 8 weeks of days from `first`, local time.

    Every ticket of a batch asks about the same few days, and building them is most of what assignment
    costs: they are kept per (hours, first day), and the cache is emptied when it grows past a few weeks
    of days for every department.
    """
    key = (days, opening, closing, first, zone, fold)
    cached = _SCHEDULES.get(key)
    if cached is not None:
        return cached
    out = []
    day = datetime(first.year, first.month, first.day, tzinfo=zone, fold=fold)
    for _ in range(56):
        if WEEKDAYS[day.weekday()] in days:
            opens = day.replace(hour=opening.hour, minute=opening.minute)
            closes = (
                day + timedelta(days=1)
                if closing is None
                else day.replace(hour=closing.hour, minute=closing.minute)
            )
            out.append((opens, closes, (closes - opens).total_seconds()))
        day = day + timedelta(days=1)
    if len(_SCHEDULES) >= 1024:
        _SCHEDULES.clear()
    cached = _SCHEDULES[key] = tuple(out)
    return cached


class Department(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    name: str
    categories: list[str] = Field(default=[], description="What it can fix (besides what rules send it)")
    districts: list[str] = Field(default=[], description="Where it works; empty means everywhere")
    capacity: int = Field(default=100, ge=1, description="Tickets it resolves per day")
    hours: WorkingHours = WorkingHours()
    webhook_url: str | None = Field(default=None, pattern=r"^https?://")
    token_env: str | None = Field(
        default=None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Name of the environment variable holding the webhook signing secret",
    )

    def serves(self, district: str | None) -> bool:
        return not self.districts or (district is not None and district in self.districts)

    def hourly_rate(self) -> float:
        """Tickets resolved per working hour, from the daily capacity spread over the working week."""
        return self.capacity * 7 / self.hours.hours_per_week()


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    department: str
    district: str | None = None
    priority: int = 0


class Policy(BaseModel):
    """How assignment weighs its inputs, in hours so that they add up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    priority_hours: float = Field(default=2.0, ge=0, description="Preference for one priority step")
    rejection_hours: float = Field(default=6.0, ge=0, description="Time a rejection costs the citizen")
    breach_hours: float = Field(
        default=48.0, ge=0, description="How many hours of waiting a missed deadline weighs"
    )
    coordinator_priority: int = Field(
        default=-10, description="The coordinator's priority when it competes for a rejected ticket"
    )
    prior_accepts: float = Field(default=4.0, gt=0, description="Beta prior of the acceptance rate")
    prior_rejects: float = Field(default=1.0, gt=0)


class RoutingTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 2
    timezone: str = "Asia/Shanghai"
    departments: list[Department] = Field(min_length=1)
    rules: list[Rule] = []
    fallbacks: dict[str, str] = Field(default={}, description="District -> its 兜底 department")
    fallback: str = Field(description="Owner of tickets with no district or no district fallback")
    coordinator: str = Field(description="Where a ticket goes after max_rejections rejections")
    max_rejections: int = Field(default=3, ge=1)
    policy: Policy = Policy()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def department(self, department_id: str) -> Department | None:
        return self._by_id.get(department_id)

    @cached_property
    def _by_id(self) -> dict[str, Department]:
        """Assignment looks departments up several times per ticket. The table is frozen (a reload
        builds a new one), so the index never goes stale; the first of a duplicated id wins, as before."""
        by_id: dict[str, Department] = {}
        for d in self.departments:
            by_id.setdefault(d.id, d)
        return by_id

    def fallback_for(self, district: str | None) -> str:
        return self.fallbacks.get(district or "", self.fallback)

    def rules_for(self, category: str, district: str | None) -> list[Rule]:
        """The rules that apply to a ticket: its category's, for its district or for every district.
        The one place rules are matched: `route` and assignment (`assign.candidates`) both start here."""
        return [
            r for r in self.rules if r.category == category and (r.district is None or r.district == district)
        ]

    def route(self, category: str, district: str | None) -> tuple[str, str]:
        """Routing by the table alone, (department, reason): the most specific, highest-priority rule,
        else the district's fallback. What planning and the simulation's baseline use; assignment
        (`services.dispatch.assign`) weighs the same rules against each department's load."""
        matches = self.rules_for(category, district)
        if matches:
            best = max(matches, key=lambda r: (r.district is not None, r.priority))
            where = f" in {best.district}" if best.district else ""
            return best.department, f"rule: {category}{where} -> {best.department}"
        owner = self.fallback_for(district)
        return owner, f"fallback: no rule for {category}, {district or 'no district'} -> {owner}"

    def problems(self, env: dict[str, str] | None = None) -> list[tuple[tuple[str | int, ...], str]]:
        """Cross-reference problems, each with the path of the offending value."""
        env = dict(os.environ) if env is None else env
        ids = [d.id for d in self.departments]
        known = set(ids)
        out: list[tuple[tuple[str | int, ...], str]] = []
        seen: set[str] = set()
        for i, d in enumerate(self.departments):
            if d.id in seen:
                out.append((("departments", i, "id"), f"duplicate department id {d.id!r}"))
            seen.add(d.id)
            if d.webhook_url and not d.token_env:
                out.append((("departments", i, "webhook_url"), "a webhook_url needs a token_env"))
            if d.token_env and not env.get(d.token_env):
                out.append(
                    (("departments", i, "token_env"), f"environment variable {d.token_env} is not set")
                )
        for i, r in enumerate(self.rules):
            if r.department not in known:
                out.append((("rules", i, "department"), f"unknown department {r.department!r}"))
        for district, owner in self.fallbacks.items():
            if owner not in known:
                out.append((("fallbacks", district), f"unknown department {owner!r}"))
        for name in ("fallback", "coordinator"):
            if getattr(self, name) not in known:
                out.append(((name,), f"unknown department {getattr(self, name)!r}"))
        return out


def load_routing(path: Path, env: dict[str, str] | None = None) -> RoutingTable:
    """Load and validate the table; ConfigError lists every problem as `file:line: where: what`."""
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    try:
        table = RoutingTable.model_validate(data)
    except ValidationError as exc:
        errors = [(tuple(e["loc"]), e["msg"]) for e in exc.errors()]
        raise ConfigError(_report(path, root, errors)) from None
    if problems := table.problems(env):
        raise ConfigError(_report(path, root, problems))
    return table


def _report(path: Path, root: yaml.Node | None, errors: list[tuple[tuple[str | int, ...], str]]) -> str:
    lines = [
        f"{path}:{_line_of(root, loc)}: {'.'.join(map(str, loc)) or '<top>'}: {msg}" for loc, msg in errors
    ]
    return f"invalid routing table ({len(lines)} problem{'s' if len(lines) > 1 else ''}):\n" + "\n".join(
        lines
    )


def _line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int:
    """The 1-based line of the deepest node `loc` reaches (the enclosing one when a key is missing)."""
    if node is None:
        return 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


class RoutingSource:
    """The table in use, reloaded when its file changes; an invalid new file keeps the old table."""

    def __init__(
        self,
        path: Path,
        *,
        on_reload: Callable[[str], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.path = path
        self._env = env
        self._on_reload = on_reload or (lambda outcome: None)
        self._stamp = self._stat()
        self.table = load_routing(path, env)  # the first load must succeed: refuse to start otherwise

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def refresh(self) -> RoutingTable:
        """Cheap (one stat) unless the file changed; returns the table to use now."""
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return self.table
        self._stamp = stamp
        try:
            self.table = load_routing(self.path, self._env)
        except ConfigError as exc:
            log.error("routing change rejected, keeping the table in use: %s", exc)
            self._on_reload("invalid")
        else:
            log.info("routing table reloaded from %s", self.path)
            self._on_reload("ok")
        return self.table
