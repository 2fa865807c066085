"""An emergency said in ordinary words, posted over real HTTP to the real processes, reaches the ticket as
"emergency" with the cue that fired, and dispatch gives it the one-hour deadline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from services.intake.app import IntakeSettings
from shared.bus import redis_client
from shared.store import TicketStore
from tools.demo import post_calls, wait_dispatched
from tools.runner import Stack

pytestmark = [pytest.mark.redis, pytest.mark.e2e]

CALLS = {
    # The sentence that went to the 24 h queue before: no fixed phrase, an object and a state.
    "gas": ("燃气管道好像泄漏了，闻到很浓的煤气味", True),
    "smoke": ("Thick smoke is pouring out of the flat next door", True),
    "negated": ("燃气公司来看过了，煤气没有泄漏，想问一下换表的事", False),
}


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    import redis as sync_redis

    sync_redis.Redis.from_url(redis_url).flushdb()
    with Stack(redis_url=redis_url, log_dir=tmp_path / "logs") as running:
        yield running


async def test_an_ordinary_words_emergency_is_urgent_with_its_cue_end_to_end(stack: Stack) -> None:
    calls = [
        {"call_id": f"urgency-{name}", "caller": "+8613800002222", "transcript": text, "language": "zh"}
        for name, (text, _) in CALLS.items()
    ]
    tickets = await post_calls(stack.url_of("intake"), IntakeSettings().webhook_secrets[0], calls)
    assert len(tickets) == len(CALLS)
    assert stack.redis_url is not None
    outcome = await wait_dispatched(stack.redis_url, list(tickets.values()), wait_seconds=60)
    assert outcome.missing == []
    redis = redis_client(stack.redis_url)
    try:
        store = TicketStore(redis)
        for name, (_, urgent) in CALLS.items():
            ticket = await store.get_or_raise(tickets[f"urgency-{name}"])
            cue = str((ticket.model_extra or {})["urgency_cue"])
            assert (ticket.urgency == "emergency", cue.startswith("combo:")) == (urgent, urgent), (name, cue)
            assert ticket.received_at and ticket.dispatch_due_at
            within = ticket.dispatch_due_at - ticket.received_at
            assert (within <= timedelta(hours=1)) == urgent, name
    finally:
        await redis.aclose()
