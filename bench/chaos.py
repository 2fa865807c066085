"""Chaos benchmark: kill -9 each worker in turn while tickets flow, and count what survives.

Runs the same load twice on fresh embedded Redis instances: once undisturbed (the baseline), once with
every worker killed (SIGKILL) and restarted in turn. Every department has a webhook (a recording HTTP
server here). Prints sent, accepted, dispatched, lost (must be 0), duplicated side effects (store steps
applied twice, tickets delivered under two event ids: must be 0), the webhooks repeated with the same
id (a delivery in flight when dispatch was killed: receivers drop it by its webhook-id), and the time
from the last restart until every ticket is dispatched and delivered.

    .venv/bin/python -m bench.chaos --tickets 3000 --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from services.intake.app import IntakeSettings
from shared.bus import redis_client
from tests.faults.departments import routing_with_webhooks
from tests.support import Recorder, recording_server, wait_for
from tools.audit import audit
from tools.demo import make_calls, post_calls, wait_dispatched
from tools.embedded import EmbeddedRedis
from tools.runner import Stack

WORKERS = ("classifier", "dispatch", "evaluation", "insight")


@dataclass
class Run:
    label: str
    sent: int
    accepted: int
    dispatched: int
    lost: int
    duplicated: int
    webhooks: int
    webhooks_twice: int
    two_ids: int
    republished: int
    recover_seconds: float
    total_seconds: float


async def run(label: str, tickets: int, rate: float, kill: bool, claim_idle_ms: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis").start()
        try:
            async with recording_server() as department:
                env = {
                    "HOTLINE_CLAIM_IDLE_MS": str(claim_idle_ms),
                    **routing_with_webhooks(Path(tmp), department.url),
                }
                stack = Stack(redis_url=redis_server.url, extra_env=env)
                await asyncio.to_thread(stack.start)
                try:
                    return await _load(label, stack, department, tickets, rate, kill)
                finally:
                    await asyncio.to_thread(stack.stop)
        finally:
            redis_server.close()


async def _load(label: str, stack: Stack, department: Recorder, tickets: int, rate: float, kill: bool) -> Run:
    assert stack.redis_url is not None
    calls = make_calls(tickets, seed=1)
    started = time.monotonic()
    secret = IntakeSettings().webhook_secrets[0]
    posting = asyncio.create_task(post_calls(stack.url_of("intake"), secret, calls, rate=rate))
    last_fault = started
    if kill:
        gap = tickets / rate / (len(WORKERS) + 1)
        for service in WORKERS:
            await asyncio.sleep(gap)
            stack.stop_service(service, sig=signal.SIGKILL)
            await asyncio.sleep(0.5)
            stack.start_service(service)
            last_fault = time.monotonic()
    accepted = await posting
    outcome = await wait_dispatched(stack.redis_url, list(accepted.values()), wait_seconds=300)

    async def all_delivered() -> bool:
        return len(set(department.delivered())) >= len(outcome.tickets)

    with contextlib.suppress(AssertionError):  # a shortfall is reported below, not raised
        await wait_for(all_delivered, "every webhook", within=120)
    done = time.monotonic()
    redis = redis_client(stack.redis_url)
    try:
        result = await audit(redis, list(accepted.values()))
    finally:
        await redis.aclose()
    delivered = department.delivered()
    return Run(
        label=label,
        sent=tickets,
        accepted=len(accepted),
        dispatched=len(outcome.tickets),
        lost=result.lost + (tickets - len(accepted)),
        duplicated=len(result.store_twice),
        webhooks=len(set(delivered)),
        webhooks_twice=len(delivered) - len(set(delivered)),
        two_ids=sum(1 for ids in department.ids_per_ticket().values() if len(ids) > 1),
        republished=sum(result.published_twice.values()),
        recover_seconds=done - last_fault,
        total_seconds=done - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=500.0, help="calls posted per second")
    parser.add_argument("--claim-idle-ms", type=int, default=2000)
    args = parser.parse_args()
    runs = [
        asyncio.run(run("baseline (no faults)", args.tickets, args.rate, False, args.claim_idle_ms)),
        asyncio.run(run("kill -9 each worker", args.tickets, args.rate, True, args.claim_idle_ms)),
    ]
    header = (
        f"{'run':<22} {'sent':>6} {'accepted':>8} {'dispatched':>10} {'lost':>5} {'store twice':>11} "
        f"{'webhooks':>8} {'two ids':>7} {'same-id repeats':>15} {'re-published':>12} {'recover s':>9} "
        f"{'total s':>8}"
    )
    print(header)
    for r in runs:
        print(
            f"{r.label:<22} {r.sent:>6} {r.accepted:>8} {r.dispatched:>10} {r.lost:>5} {r.duplicated:>11} "
            f"{r.webhooks:>8} {r.two_ids:>7} {r.webhooks_twice:>15} {r.republished:>12} "
            f"{r.recover_seconds:>9.1f} {r.total_seconds:>8.1f}"
        )
    base, chaos = runs
    print(f"total time with faults / without: {chaos.total_seconds / base.total_seconds:.2f}x")
    print("re-published: output events appended again after a kill; the store applied them once")


if __name__ == "__main__":
    main()
