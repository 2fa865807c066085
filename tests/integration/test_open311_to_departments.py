"""What a citizen sends through Open311 reaches the department: the photo (media_url) and their later
comments (FixMyStreet's POST servicerequestupdates), in the department's queue and at its own webhook.
Intake over ASGI, dispatch's batch worker and outbound sender, a department's system under uvicorn, Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.dispatch import state
from services.dispatch.metrics import DispatchMetrics
from services.dispatch.outbound import Outbound, OutboundSettings
from services.dispatch.routing import RoutingSource
from services.intake.settings import DEV_OPEN311_KEY, dev_department_token
from shared import streams
from shared.codec import decode
from shared.events import TicketUpdated
from shared.settings import DATA_DIR
from shared.store import TicketStore
from tests.integration.dispatch_support import Harness
from tests.integration.intake_support import classified_utilities, intake_client
from tests.support import serving, wait_for
from tools.embedded import free_port

pytestmark = pytest.mark.redis
BASE = "/open311/v2"
SECRET = {"WATER_SECRET": "whsec_d2F0ZXItc2VjcmV0"}
PHOTO = "https://fms.example.org/photo/7.jpeg"


@pytest.fixture
async def department_system() -> AsyncIterator[tuple[list[dict[str, Any]], int]]:
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append(json.loads(await request.body()))
        return Response(status_code=204)

    port = free_port()
    async with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), port):
        yield received, port


@pytest.fixture
def routing(
    tmp_path: Path, department_system: tuple[list[dict[str, Any]], int], monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("WATER_SECRET", SECRET["WATER_SECRET"])
    table = yaml.safe_load((DATA_DIR / "routing.yaml").read_text(encoding="utf-8"))
    water = next(d for d in table["departments"] if d["id"] == "water_utility")
    water.update(webhook_url=f"http://127.0.0.1:{department_system[1]}/hook", token_env="WATER_SECRET")
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(table, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
async def client(redis: Redis, redis_url: str, routing: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with intake_client(redis_url, routing_path=routing) as c:
        yield c


async def deliver(redis: Redis, routing: Path, received: list[dict[str, Any]], count: int) -> None:
    settings = OutboundSettings(max_attempts=2, backoff_base=0.05, backoff_cap=0.1)
    outbound = Outbound(
        redis,
        RoutingSource(routing, env=SECRET),
        DispatchMetrics(CollectorRegistry()),
        settings,
        maxlen=1000,
        env=SECRET,
    )
    async with httpx.AsyncClient() as http:
        for event_id in await outbound.claim(100):
            await outbound.deliver(http, event_id)

    async def arrived() -> bool:
        return len(received) >= count

    await wait_for(arrived, f"{count} webhooks at the department")


def update(ticket_id: str, update_id: str, /, **over: str) -> dict[str, str]:
    return {
        "api_key": DEV_OPEN311_KEY,
        "jurisdiction_id": "city.example.org",
        "service_request_id": ticket_id,
        "update_id": update_id,
        "status": "OPEN",
        "description": "Still leaking this morning, worse than yesterday",
        "updated_datetime": "2026-11-28T09:15:00+08:00",
        "email": "citizen@example.org",
        "first_name": "Li",
        "last_name": "Wei",
        **over,
    }


async def test_photo_and_comments_reach_the_department(
    client: httpx.AsyncClient,
    redis: Redis,
    routing: Path,
    department_system: tuple[list[dict[str, Any]], int],
) -> None:
    received, _ = department_system
    report = {
        "api_key": DEV_OPEN311_KEY,
        "service_code": "utilities",
        "lat": "39.91",
        "long": "116.40",
        "description": "Burst water main",
        "attribute[supply]": "water",
        "media_url": PHOTO,
    }
    created = await client.post(f"{BASE}/requests.json", data=report)
    ticket_id = created.json()[0]["service_request_id"]
    ticket = await TicketStore(redis).get_or_raise(ticket_id)
    assert ticket.received_at is not None
    dispatch = Harness(redis, routing)
    await dispatch.feed(streams.CLASSIFIED, classified_utilities(ticket_id, ticket.received_at, "c1"))
    [dispatched] = await dispatch.dispatched()
    assert (dispatched.department, dispatched.media_url) == ("water_utility", PHOTO)
    await deliver(redis, routing, received, 1)
    assert received[0]["ticket_id"] == ticket_id and received[0]["media_url"] == PHOTO

    # FixMyStreet tells us of the citizen's comment, with a new photo, as a multipart form.
    fields = update(ticket_id, "fms-901", media_url="https://fms.example.org/photo/8.jpeg")
    files = {"photo": ("8.jpeg", b"\xff\xd8 jpeg", "image/jpeg")}
    resp = await client.post(f"{BASE}/servicerequestupdates.xml", data=fields, files=files)
    assert resp.status_code == 200, resp.text
    root = ET.fromstring(resp.content)
    assert root.tag == "service_request_updates"
    update_id = root.findtext("request_update/update_id")
    assert update_id
    again = await client.post(f"{BASE}/servicerequestupdates.json", data=fields)
    assert again.json() == [{"update_id": update_id}], "the same update_id is the same update"
    [(_, raw)] = await redis.xrange(streams.UPDATED)
    event = decode(raw, TicketUpdated)
    assert (event.action, event.citizen_status, event.department) == ("comment", "open", "water_utility")
    assert b"citizen@example.org" not in raw[b"__data__"] and b"Wei" not in raw[b"__data__"]

    await dispatch.feed(streams.UPDATED, event)
    token = {"authorization": f"Bearer {dev_department_token('water_utility')}"}
    [queued] = (await client.get("/v1/departments/water_utility/tickets", headers=token)).json()["tickets"]
    assert queued["media_url"] == PHOTO
    assert queued["citizen_comment"] == "Still leaking this morning, worse than yesterday"
    assert queued["citizen_media_url"] == "https://fms.example.org/photo/8.jpeg"
    assert queued["citizen_status"] == "open"
    await deliver(redis, routing, received, 2)
    assert received[1]["action"] == "comment" and received[1]["ticket_id"] == ticket_id
    assert received[1]["note"] == "Still leaking this morning, worse than yesterday"
    history = await TicketStore(redis).history(ticket_id)
    assert [h["event"] for h in history if "comment" in h["event"]] == ["citizen_comment", "comment"]
    assert await redis.hlen(state.OUTBOUND_JOBS) == 0


@pytest.mark.parametrize(
    ("over", "status", "needle"),
    [
        ({"service_request_id": "TNOPE"}, 404, "service_request_id"),
        ({"status": "MAYBE"}, 400, "status"),
        ({"status": ""}, 400, "status"),
        ({"update_id": ""}, 400, "update_id"),
        ({"api_key": "wrong"}, 403, "api_key"),
        ({"media_url": "javascript:alert(1)"}, 400, "media_url"),
        ({"updated_datetime": "yesterday"}, 400, "updated_datetime"),
    ],
)
async def test_bad_updates_get_the_spec_error_array_and_publish_nothing(
    client: httpx.AsyncClient, redis: Redis, over: dict[str, str], status: int, needle: str
) -> None:
    report = {"api_key": DEV_OPEN311_KEY, "service_code": "utilities", "address_string": "Chang'an Ave 1"}
    ticket_id = (await client.post(f"{BASE}/requests.json", data=report)).json()[0]["service_request_id"]
    resp = await client.post(f"{BASE}/servicerequestupdates.json", data=update(ticket_id, "u1", **over))
    assert resp.status_code == status
    [error] = resp.json()
    assert error["code"] == status and needle in error["description"]
    xml = await client.post(f"{BASE}/servicerequestupdates.xml", data=update(ticket_id, "u1", **over))
    assert ET.fromstring(xml.content).findtext("error/code") == str(status)
    assert await redis.xlen(streams.UPDATED) == 0


async def test_an_older_fixmystreet_s_update_id_ext_is_its_update_id(client: httpx.AsyncClient) -> None:
    report = {"api_key": DEV_OPEN311_KEY, "service_code": "utilities", "address_string": "Chang'an Ave 1"}
    ticket_id = (await client.post(f"{BASE}/requests.json", data=report)).json()[0]["service_request_id"]
    form = {k: v for k, v in update(ticket_id, "").items() if k != "update_id"}
    first = await client.post(f"{BASE}/servicerequestupdates.json", data={**form, "update_id_ext": "77"})
    assert first.status_code == 200, first.text
    again = await client.post(f"{BASE}/servicerequestupdates.json", data={**form, "update_id": "77"})
    assert again.json() == first.json()
