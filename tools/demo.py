"""`hotline demo`: post sample calls through the signed webhook and follow every ticket to dispatch."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shared.bus import redis_client
from shared.standard_webhooks import signed_headers
from shared.status import Status
from shared.store import Ticket, TicketStore


def sample_calls() -> list[dict[str, Any]]:
    """The demo's calls: written by the Hotline team (zh and en), shipped in the package."""
    text = resources.files("tools").joinpath("data/sample_calls.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def make_calls(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    samples = sample_calls()
    run = uuid.uuid4().hex[:8]
    calls = []
    for i in range(n):
        sample = samples[i % len(samples)]
        calls.append(
            {
                "call_id": f"demo-{run}-{i:06d}",
                "caller": f"+86138{rng.randrange(10**8):08d}",
                "transcript": sample["text"],
                "language": sample["language"],
                "ivr_choice": str(rng.randint(1, 9)),
            }
        )
    return calls


async def post_calls(
    intake_url: str,
    secret: str,
    calls: list[dict[str, Any]],
    concurrency: int = 16,
    console: Console | None = None,
    rate: float | None = None,
    attempts: int = 10,
) -> dict[str, str]:
    """Post each call, signed; return call id -> ticket id (only those answered 2xx).

    Retries 429/503 and connection failures with backoff, as a provider would. `rate` paces the
    posts (calls per second over all senders); by default they go as fast as the senders can.
    """
    tickets: dict[str, str] = {}
    queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    for i, call in enumerate(calls):
        queue.put_nowait((i, call))
    started = time.monotonic()
    with Progress(console=console, transient=False, disable=console is None) as progress:
        task = progress.add_task("posting calls", total=len(calls))
        async with httpx.AsyncClient(base_url=intake_url, timeout=10.0) as client:

            async def sender() -> None:
                while not queue.empty():
                    i, call = queue.get_nowait()
                    if rate:
                        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                    body = json.dumps(call, ensure_ascii=False).encode()
                    for attempt in range(attempts):
                        headers = signed_headers(secret, f"msg_{call['call_id']}", body)
                        headers["content-type"] = "application/json"
                        try:
                            resp = await client.post("/v1/webhooks/telephony", content=body, headers=headers)
                        except httpx.TransportError:
                            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
                            continue
                        if resp.status_code in (429, 503):
                            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
                            continue
                        resp.raise_for_status()
                        tickets[call["call_id"]] = resp.json()["ticket_id"]
                        break
                    progress.advance(task)

            # A TaskGroup, not gather: when one sender fails the others are cancelled before the client
            # closes, instead of going on posting (and leaking sockets) after the caller has its error.
            try:
                async with asyncio.TaskGroup() as senders:
                    for _ in range(concurrency):
                        senders.create_task(sender())
            except ExceptionGroup as failed:  # the caller wants the first error, as from gather
                raise failed.exceptions[0] from None
    return tickets


@dataclass
class Outcome:
    tickets: list[Ticket]
    missing: list[str]
    seconds: float


async def wait_dispatched(redis_url: str, ticket_ids: list[str], wait_seconds: float) -> Outcome:
    """Poll the ticket store until every ticket is dispatched and tracked by evaluation, or time runs out."""
    redis = redis_client(redis_url)
    store = TicketStore(redis)
    started = time.monotonic()
    done: dict[str, Ticket] = {}
    missing = list(ticket_ids)
    try:
        while True:
            # Only the tickets still missing are read again, so waiting does not load the system it measures.
            found = await store.get_many(missing)
            done |= {t.ticket_id: t for t in found if t is not None and _complete(t)}
            missing = [tid for tid in missing if tid not in done]
            if not missing or time.monotonic() - started > wait_seconds:
                finished = [done[t] for t in ticket_ids if t in done]
                return Outcome(finished, missing, time.monotonic() - started)
            await asyncio.sleep(0.25)
    finally:
        await redis.aclose()


def _complete(ticket: Ticket) -> bool:
    if ticket.status == Status.DUPLICATE:
        return True
    return ticket.dispatched_at is not None and "evaluation_tracked_at" in (ticket.model_extra or {})


def summary(console: Console, outcome: Outcome) -> None:
    for title, key in (("category", "category"), ("department", "department"), ("status", "status")):
        table = Table(title=f"Tickets by {title}")
        table.add_column(title)
        table.add_column("tickets", justify="right")
        for value, count in Counter(getattr(t, key) or "-" for t in outcome.tickets).most_common():
            table.add_row(str(value), str(count))
        console.print(table)
    latencies = sorted(
        (t.dispatched_at - t.received_at).total_seconds() * 1000
        for t in outcome.tickets
        if t.dispatched_at and t.received_at
    )
    if latencies:
        table = Table(title="Webhook -> dispatched (ms)")
        for col in ("tickets", "p50", "p99", "max"):
            table.add_column(col, justify="right")
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        table.add_row(
            str(len(latencies)), f"{statistics.median(latencies):.1f}", f"{p99:.1f}", f"{latencies[-1]:.1f}"
        )
        console.print(table)
