"""The console's pages with 100,000 tickets in the store: p50/p95 per page, beside the floor of the same
app (`/livez`: the framework and the session-free path), in one run.

    .venv/bin/python -m bench.console [--tickets 100000] [--requests 200]

An embedded Redis is filled with --tickets tickets whose texts are the Teddy Cup messages
($HOTLINE_DATASETS, default /work/shared/datasets) cycled, spread over 90 days and the default city's
districts, categories and departments: 5% open (in the departments' open sets), 2,000 on the review
queue, each with a three-entry history, and a month of 三率 counters. The console app is served in this
process by uvicorn on a free port and asked over real HTTP, one request at a time, signed in as each role.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import redis as sync_redis
import uvicorn

from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.evaluation.rates import bucket_of
from shared.store import keys
from tools.embedded import EmbeddedRedis, free_port

CATEGORIES = ["urban_construction", "environment", "transport", "utilities", "housing_property", "health"]
DEPARTMENTS = {
    "urban_construction": "urban_management",
    "environment": "environment_bureau",
    "transport": "transport_bureau",
    "utilities": "water_utility",
    "housing_property": "housing_bureau",
    "health": "health_commission",
}
DISTRICTS = ["donghu", "xishan", "nangang", "beiyuan"]


def texts() -> list[str]:
    root = Path(os.environ.get("HOTLINE_DATASETS", "/work/shared/datasets"))
    with (root / "teddycup2020c" / "hotspot_messages.csv").open(encoding="utf-8") as f:
        return [f"{r['title']} {r['text']}"[:400] for r in csv.DictReader(f)]


def fill(url: str, n: int) -> str:
    """Write n tickets; answer the id of an open ticket of urban_management (for the ticket page)."""
    db = sync_redis.Redis.from_url(url)
    db.flushdb()
    rng = random.Random(5)
    corpus = texts()
    now = datetime.now(UTC)
    open_one = ""
    pipe = db.pipeline(transaction=False)
    for i in range(n):
        tid = f"TB{i:08d}"
        category = rng.choice(CATEGORIES)
        department = DEPARTMENTS[category]
        received = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
        is_open = rng.random() < 0.05
        status = rng.choice(["dispatched", "accepted"]) if is_open else "resolved"
        alternatives = [[category, 0.41], [rng.choice(CATEGORIES), 0.3], [rng.choice(CATEGORIES), 0.1]]
        fields = {
            "status": status,
            "channel": "telephony",
            "text": corpus[i % len(corpus)],
            "received_at": received.isoformat(),
            "category": category,
            "confidence": "0.41",
            "alternatives": json.dumps(alternatives),
            "urgency": "general",
            "district": rng.choice(DISTRICTS),
            "department": department,
            "dispatched_at": (received + timedelta(minutes=3)).isoformat(),
            "dispatch_due_at": (received + timedelta(hours=24)).isoformat(),
            "feedback_due_at": (received + timedelta(days=7)).isoformat(),
        }
        pipe.hset(keys.ticket(tid), mapping=fields)
        for event in ("received", "classified", "dispatched"):
            pipe.rpush(keys.history(tid), json.dumps({"at": received.isoformat(), "event": event}))
        pipe.zadd(keys.by_created, {tid: received.timestamp()})
        if is_open:
            pipe.zadd(keys.department_open(department), {tid: received.timestamp()})
            if department == "urban_management":
                open_one = tid
        if i < 2000:
            pipe.zadd(keys.review, {tid: received.timestamp()})
        if i % 5000 == 4999:
            pipe.execute()
    month = bucket_of("month", now, ZoneInfo(ConsoleSettings().timezone))
    rates = {}
    for d in DISTRICTS:
        for c in CATEGORIES:
            unit = f"department|{DEPARTMENTS[c]}|{c}"
            for measure, value in (
                ("dispatched", 400),
                ("responded", 380),
                ("evaluated", 90),
                ("resolved", 80),
            ):
                rates[f"{unit}|{measure}"] = value
                rates[f"district|{d}|{c}|{measure}"] = value // 4
    pipe.hset(keys.rates("month", month), mapping=rates)
    pipe.execute()
    return open_one


def signed_in(client: httpx.Client, user: str) -> None:
    page = client.get("/login")
    token = page.cookies.get("hotline_login_csrf") or client.cookies.get("hotline_login_csrf")
    answer = client.post(
        "/login", data={"user": user, "password": f"hotline-dev-{user}", "csrf": token, "next": "/"}
    )
    assert answer.status_code in (200, 303) and "hotline_session" in client.cookies, answer.text[:200]


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    client.get(path)  # warm: templates compiled, caches filled
    out = []
    for _ in range(n):
        started = time.perf_counter()
        answer = client.get(path)
        out.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with EmbeddedRedis() as server:
        started = time.perf_counter()
        ticket = fill(server.url, args.tickets)
        print(f"filled {args.tickets:,} tickets in {time.perf_counter() - started:.0f} s")
        port = free_port()
        settings = ConsoleSettings(redis_url=server.url, port=port)
        config = uvicorn.Config(create_app(settings), port=port, log_level="warning", access_log=False)
        web = uvicorn.Server(config)
        thread = threading.Thread(target=lambda: asyncio.run(web.serve()), daemon=True)
        thread.start()
        while not web.started:
            time.sleep(0.05)
        pages = {
            "operator": ["/operator", "/operator/queue.part", "/counts.part", f"/tickets/{ticket}"],
            "urban_management": ["/department", "/department/inbox.part"],
            "supervisor": [
                "/supervisor",
                "/supervisor/overview.part",
                "/search?district=donghu&status=accepted",
            ],
        }
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, follow_redirects=False) as floor:
            baseline = timed(floor, "/livez", args.requests)
        print(f"{'page':42} {'p50 ms':>8} {'p95 ms':>8} {'p95 / floor':>12}")
        print(f"{'/livez (floor)':42} {statistics.median(baseline):8.1f} {p95(baseline):8.1f} {1.0:12.1f}")
        worst = 0.0
        for user, paths in pages.items():
            with httpx.Client(base_url=base, follow_redirects=False) as client:
                signed_in(client, user)
                for path in paths:
                    ms = timed(client, path, args.requests)
                    worst = max(worst, p95(ms))
                    label = f"{path} ({user})"
                    ratio = p95(ms) / p95(baseline)
                    print(f"{label[:42]:42} {statistics.median(ms):8.1f} {p95(ms):8.1f} {ratio:12.1f}")
        print(f"worst page p95: {worst:.1f} ms (aim: under 200 ms)")
        web.should_exit = True
        thread.join(10)


if __name__ == "__main__":
    main()
