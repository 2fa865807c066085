"""From classified tickets to counts, episodes and hotspot alerts: plain functions over loaded state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from services.insight.state import (
    EPISODES,
    count_ops,
    episode_json,
    hour_index,
    hour_start,
    series_key,
    split_series,
)
from services.insight.surge import Baseline, Surge, SurgeDetector
from shared import streams
from shared.effects import Effects, HashSet, Publish, StoreWrite
from shared.events import HotspotAlert, TicketClassified
from shared.ids import derive_id

EXAMPLES = 5


def episode_id(series: str, start_hour: int) -> str:
    """The same episode always gets the same id, so a retried batch republishes the same alert."""
    return derive_id("hotspot", series, str(start_hour))


@dataclass(frozen=True)
class Prepared:
    """What a batch needs from the store: counts and episodes (in the detector), each day's baseline,
    and recent examples."""

    detector: SurgeDetector
    baselines: Mapping[date, Baseline]
    recent: Mapping[str, list[str]]


def series_of(event: TicketClassified) -> str:
    return series_key(event.category, event.place.district)


def on_classified(events: list[TicketClassified], prepared: Prepared) -> list[Effects]:
    """Count each ticket in its series; the ticket that starts an episode raises one HotspotAlert."""
    detector = prepared.detector
    recent = {s: list(ids) for s, ids in prepared.recent.items()}
    out: list[Effects] = []
    for event in events:
        series = series_of(event)
        examples = recent.setdefault(series, [])
        examples.insert(0, event.ticket_id)
        ops = count_ops(series, event.received_at, event.ticket_id)
        detector.baseline = prepared.baselines[event.received_at.date()]
        surge, changed = detector.observe(series, hour_index(event.received_at))
        publish: list[Publish] = []
        if changed is not None:
            ops.append(HashSet(EPISODES, series, episode_json(changed)))
        if surge is not None:
            publish.append(Publish(streams.HOTSPOTS, alert_for(surge, examples[:EXAMPLES], event)))
        out.append(
            Effects(
                publish=publish,
                writes=[StoreWrite(ticket_id=event.ticket_id, event_id=event.event_id, ops=ops)],
            )
        )
    return out


def alert_for(surge: Surge, examples: list[str], trigger: TicketClassified) -> HotspotAlert:
    episode, breach = surge.episode, surge.breach
    category, district = split_series(episode.series)
    eid = episode_id(episode.series, episode.start_hour)
    return HotspotAlert(
        event_id=eid,
        ticket_id=eid,
        occurred_at=trigger.received_at,
        category=category,
        district=district,
        count=breach.count,
        expected=round(breach.expected, 4),
        probability=breach.probability,
        example_tickets=examples,
        window_hours=breach.window,
        episode_start=hour_start(episode.start_hour),
    )
