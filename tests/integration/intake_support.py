"""Helpers for intake's integration tests: the app over ASGI on the test Redis, signed posts, seeding."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
from redis.asyncio import Redis

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.effects import SortedAdd, StoreWrite
from shared.events import Place, TicketClassified, Urgency, utcnow
from shared.standard_webhooks import signed_headers
from shared.store import TicketStore, iso

SECRET = "whsec_dGVzdC1zZWNyZXQ="
SURVEY_SECRET = "whsec_c3VydmV5LXNlY3JldA=="
NUMBER = "+8613912345678"


@contextlib.asynccontextmanager
async def intake_client(redis_url: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    options: dict[str, Any] = {
        "redis_url": redis_url,
        "webhook_secrets": [SECRET],
        "survey_webhook_secrets": [SURVEY_SECRET],
        "public_base_url": "https://hotline.example.org",
        **settings,
    }
    app = create_app(IntakeSettings(**options))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        yield client
    await app.state.redis.aclose()  # ASGITransport runs no lifespan


def call(call_id: str = "call-1", **over: object) -> bytes:
    data: dict[str, object] = {
        "call_id": call_id,
        "caller": NUMBER,
        "transcript": "小区停水两天了",
        "language": "zh",
        "location": {"lat": 39.9, "lon": 116.4},
    }
    data.update(over)
    return json.dumps(data, ensure_ascii=False).encode()


async def post_signed(
    client: httpx.AsyncClient,
    path: str,
    body: bytes,
    webhook_id: str = "msg_1",
    secret: str = SECRET,
    content_type: str = "application/json",
) -> httpx.Response:
    headers = {**signed_headers(secret, webhook_id, body), "content-type": content_type}
    return await client.post(path, content=body, headers=headers)


async def new_ticket(client: httpx.AsyncClient, call_id: str) -> str:
    resp = await post_signed(client, "/v1/webhooks/telephony", call(call_id), webhook_id=f"msg_{call_id}")
    assert resp.status_code == 202, resp.text
    return str(resp.json()["ticket_id"])


async def dispatch_to(
    redis: Redis,
    ticket_id: str,
    department: str,
    attempt: int = 1,
    at: datetime | None = None,
    **fields: str,
) -> None:
    """What dispatch writes when it sends a ticket to a department (its projection write), at `at`."""
    now = iso(at or utcnow())
    await TicketStore(redis).apply(
        StoreWrite(
            ticket_id=ticket_id,
            event_id=f"dispatch-{attempt}",
            fields={
                "status": "dispatched",
                "department": department,
                "category": "utilities",
                "dispatched_at": now,
                "feedback_due_at": now,
                **fields,
            },
            history={
                "at": now,
                "event": "dispatched",
                "department": department,
                "summary": f"to {department}",
            },
            ops=[SortedAdd(f"hotline:dept:{department}:open", ticket_id, 1)],
        ),
        scope="dispatch",
    )


def classified_utilities(
    ticket_id: str, at: datetime, event_id: str, district: str | None = None, urgency: Urgency = "general"
) -> TicketClassified:
    """What the classifier publishes for a water-supply ticket, for dispatch's own handlers to take."""
    return TicketClassified(
        event_id=event_id,
        ticket_id=ticket_id,
        occurred_at=at,
        category="utilities",
        confidence=0.9,
        urgency=urgency,
        place=Place(district=district),
        model_version="test",
        received_at=at,
    )
