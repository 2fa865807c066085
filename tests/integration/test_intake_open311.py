"""Open311 GeoReport v2 as real clients use it: XML by default, JSON on .json, progress from the store."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from xml.etree import ElementTree as ET

import httpx
import pytest
import yaml
from redis.asyncio import Redis

from services.intake import open311
from services.intake.credentials import token_hash
from services.intake.settings import DEV_OPEN311_KEY
from shared import streams
from shared.codec import decode
from shared.events import TicketReceived, TicketUpdated, utcnow
from shared.settings import DATA_DIR
from shared.store import TicketStore
from tests.integration.dispatch_support import Harness
from tests.integration.intake_support import classified_utilities, dispatch_to, intake_client, new_ticket

pytestmark = pytest.mark.redis
BASE = "/open311/v2"
W3C = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")


@pytest.fixture
async def client(redis: Redis, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with intake_client(redis_url, timezone="Asia/Shanghai") as c:
        yield c


def report(**over: str) -> dict[str, str]:
    return {
        "api_key": DEV_OPEN311_KEY,
        "service_code": "utilities",
        "lat": "39.91",
        "long": "116.40",
        "description": "Burst water main on Chang'an Avenue",
        "phone": "+86 139 1234 5678",
        "email": "citizen@example.org",
        "attribute[supply]": "water",
        **over,
    }


async def create(client: httpx.AsyncClient, fmt: str = ".json", **over: str) -> httpx.Response:
    return await client.post(f"{BASE}/requests{fmt}", data=report(**over))


async def test_discovery_and_services_in_both_formats_xml_by_default(client: httpx.AsyncClient) -> None:
    xml = await client.get(f"{BASE}/services")
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(xml.content)
    assert root.tag == "services"
    codes = [s.findtext("service_code") for s in root.findall("service")]
    assert "utilities" in codes and len(codes) == 10
    assert (await client.get(f"{BASE}/services.xml")).content == xml.content
    listing = (await client.get(f"{BASE}/services.json")).json()
    utilities = next(s for s in listing if s["service_code"] == "utilities")
    assert utilities["metadata"] is True and utilities["type"] == "realtime"
    discovery = ET.fromstring((await client.get(f"{BASE}/discovery.xml")).content)
    assert discovery.findtext("endpoints/endpoint/url") == "https://hotline.example.org/open311/v2"
    assert [f.text for f in discovery.findall("endpoints/endpoint/formats/format")] == [
        "text/xml",
        "application/json",
    ]
    assert (await client.get(f"{BASE}/discovery.json")).json()["endpoints"][0]["type"] == "production"


async def test_a_service_definition_lists_its_attributes(client: httpx.AsyncClient) -> None:
    definition = ET.fromstring((await client.get(f"{BASE}/services/utilities.xml")).content)
    assert definition.tag == "service_definition"
    attribute = definition.find("attributes/attribute")
    assert attribute is not None
    assert (attribute.findtext("code"), attribute.findtext("datatype")) == ("supply", "singlevaluelist")
    assert [v.findtext("key") for v in attribute.findall("values/value")] == [
        "water",
        "power",
        "gas",
        "heating",
    ]
    missing = await client.get(f"{BASE}/services/astrology.json")
    assert missing.status_code == 404
    assert missing.json() == [{"code": 404, "description": "no such service_code"}]


async def test_post_creates_a_ticket_through_the_same_intake(client: httpx.AsyncClient, redis: Redis) -> None:
    resp = await create(client, fmt=".xml")
    assert resp.status_code == 201, resp.text
    root = ET.fromstring(resp.content)
    assert root.tag == "service_requests"
    ticket_id = root.findtext("request/service_request_id")
    assert ticket_id
    [(_, fields)] = await redis.xrange(streams.RECEIVED)
    event = decode(fields, TicketReceived)
    assert (event.ticket_id, event.channel, event.service_code) == (ticket_id, "open311", "utilities")
    assert event.attributes == {"supply": ["water"]}
    assert event.location is not None and event.location.lat == 39.91
    assert event.caller is not None and event.caller.masked.endswith("5678")
    assert b"13912345678" not in fields[b"__data__"] and b"citizen@example.org" not in fields[b"__data__"]
    again = await create(client, fmt=".xml")
    assert ET.fromstring(again.content).findtext("request/service_request_id") == ticket_id
    assert await redis.xlen(streams.RECEIVED) == 1


async def test_the_same_body_in_a_later_window_is_a_new_report_but_the_same_key_is_a_retry(
    client: httpx.AsyncClient, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = (await create(client)).json()[0]["service_request_id"]
    keyed = await client.post(f"{BASE}/requests.json", data=report(), headers={"Idempotency-Key": "k-1"})
    keyed_id = keyed.json()[0]["service_request_id"]
    assert keyed_id != first
    # Weeks later: the markers of both deliveries have expired (DEDUPE_TTL_SECONDS).
    await redis.delete(*[k async for k in redis.scan_iter("hotline:dedupe:*")])
    now = open311.retry_window()
    monkeypatch.setattr(open311, "retry_window", lambda: now + 1)
    later = (await create(client)).json()[0]["service_request_id"]
    assert later not in (first, keyed_id), "a new report of the same thing gets its own ticket"
    again = await client.post(f"{BASE}/requests.json", data=report(), headers={"Idempotency-Key": "k-1"})
    assert again.json()[0]["service_request_id"] == keyed_id, (
        "an Idempotency-Key is a retry whenever it comes"
    )
    assert await redis.xlen(streams.RECEIVED) == 3


@pytest.mark.parametrize(
    ("over", "status", "needle"),
    [
        ({"api_key": "wrong"}, 403, "api_key"),
        ({"api_key": ""}, 403, "api_key"),
        ({"service_code": "astrology"}, 400, "service_code"),
        ({"lat": "", "long": ""}, 400, "location"),
        ({"lat": "north"}, 400, "lat"),
        ({"attribute[supply]": "lava"}, 400, "attribute[supply]"),
        ({"description": "x" * 4001}, 400, "description"),
    ],
)
async def test_bad_posts_get_the_spec_error_array(
    client: httpx.AsyncClient, redis: Redis, over: dict[str, str], status: int, needle: str
) -> None:
    json_resp = await create(client, **over)
    assert json_resp.status_code == status
    [error] = json_resp.json()
    assert error["code"] == status and needle in error["description"]
    xml_resp = await create(client, fmt="", **over)
    assert ET.fromstring(xml_resp.content).findtext("error/code") == str(status)
    assert await redis.xlen(streams.RECEIVED) == 0


async def test_required_attributes_and_repeated_values(redis: Redis, redis_url: str, tmp_path: Path) -> None:
    taxonomy = yaml.safe_load((DATA_DIR / "taxonomy.yaml").read_text(encoding="utf-8"))
    utilities = next(c for c in taxonomy["categories"] if c["code"] == "utilities")
    utilities["attributes"][0].update(required=True, datatype="multivaluelist")
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(taxonomy, allow_unicode=True), encoding="utf-8")
    async with intake_client(redis_url, taxonomy_path=path) as c:
        params = [(k, v) for k, v in report().items() if not k.startswith("attribute")]
        missing = await c.post(f"{BASE}/requests.json", data=dict(params))
        assert missing.status_code == 400 and "attribute[supply] is required" in missing.text
        both = [*params, ("attribute[supply][]", "water"), ("attribute[supply][]", "gas")]
        body = str(httpx.QueryParams(both)).encode()
        resp = await c.post(
            f"{BASE}/requests.json",
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        assert resp.status_code == 201, resp.text
    [(_, fields)] = await redis.xrange(streams.RECEIVED)
    assert decode(fields, TicketReceived).attributes == {"supply": ["water", "gas"]}


async def test_get_requests_shows_progress_from_the_ticket_store(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    created = (await create(client)).json()[0]["service_request_id"]
    phoned = await new_ticket(client, "phone-1")
    await dispatch_to(redis, created, "water_utility", feedback_due_at="2026-03-01T02:00:00+00:00")
    await dispatch_to(redis, phoned, "water_utility", status="resolved")

    listing = (await client.get(f"{BASE}/requests.json")).json()
    assert [r["service_request_id"] for r in listing] == [phoned, created]  # newest first
    mine = listing[1]
    assert (mine["status"], mine["agency_responsible"]) == ("open", "水务集团 / Water Utility")
    assert mine["expected_datetime"] == "2026-03-01T10:00:00+08:00"
    assert W3C.match(mine["requested_datetime"]) and mine["requested_datetime"].endswith("+08:00")
    assert (mine["lat"], mine["long"], mine["service_code"]) == (39.91, 116.4, "utilities")
    assert mine["description"] == "Burst water main on Chang'an Avenue"
    assert listing[0]["status"] == "closed" and listing[0]["description"] is None  # phone text stays private

    closed = (await client.get(f"{BASE}/requests.json", params={"status": "closed"})).json()
    assert [r["service_request_id"] for r in closed] == [phoned]
    by_id = (
        await client.get(f"{BASE}/requests.json", params={"service_request_id": f"{created},TNOPE"})
    ).json()
    assert [r["service_request_id"] for r in by_id] == [created]
    future = {"start_date": "2099-01-01T00:00:00+08:00", "end_date": "2099-02-01T00:00:00Z"}
    assert (await client.get(f"{BASE}/requests.json", params=future)).json() == []
    xml = ET.fromstring((await client.get(f"{BASE}/requests/{created}.xml")).content)
    assert xml.findtext("request/status") == "open" and xml.findtext("request/lat") == "39.91"
    assert datetime.fromisoformat(xml.findtext("request/updated_datetime") or "").tzinfo is not None
    token = (await client.get(f"{BASE}/tokens/{created}.json")).json()
    assert token == [{"service_request_id": created, "token": created}]


async def test_a_phone_number_typed_into_a_description_is_not_published(client: httpx.AsyncClient) -> None:
    """The phone field is kept only hashed; a number written into the description is contact data too:
    masked when stored, and any other long digit run is blanked when published."""
    said = "Burst main on 2026-11-28, call me on +86 139 1234 5678 or 8765 4321"
    created = (await create(client, description=said)).json()[0]["service_request_id"]
    shown = (await client.get(f"{BASE}/requests/{created}.json")).json()[0]["description"]
    assert shown == "Burst main on 2026-11-28, call me on [电话] or [number removed]"
    listed = (await client.get(f"{BASE}/requests.xml")).text
    assert "1234 5678" not in listed and "[电话]" in listed


async def test_control_characters_in_a_report_do_not_break_the_xml_of_every_listing(
    client: httpx.AsyncClient,
) -> None:
    """XML 1.0 cannot carry most C0 controls, even escaped: one report holding one would otherwise make
    requests.xml unreadable for every client (FixMyStreet reads XML)."""
    resp = await create(client, description="Pipe\x0cburst\x01 here\tnow", address_string="No.\x0b 5")
    created = resp.json()[0]["service_request_id"]
    for path in (f"{BASE}/requests/{created}.xml", f"{BASE}/requests.xml", f"{BASE}/requests"):
        root = ET.fromstring((await client.get(path)).content)
        assert root.findtext("request/description") == "Pipeburst here\tnow"
        assert root.findtext("request/address") == "No. 5"
    listing = (await client.get(f"{BASE}/requests.json")).json()
    assert listing[0]["description"] == "Pipe\x0cburst\x01 here\tnow"  # JSON carries them as they are


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"{BASE}/requests/TNOPE.json", 404),
        (f"{BASE}/tokens/TNOPE.json", 404),
        (f"{BASE}/requests.json?status=pending", 400),
        (f"{BASE}/requests.json?start_date=yesterday", 400),
        (f"{BASE}/requests.json?start_date=2026-02-01T00:00:00Z&end_date=2026-01-01T00:00:00Z", 400),
    ],
)
async def test_bad_reads_get_the_spec_error_array(client: httpx.AsyncClient, path: str, status: int) -> None:
    resp = await client.get(path)
    assert resp.status_code == status
    assert resp.json()[0]["code"] == status


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", f"{BASE}/requests.xml", "GET, HEAD, POST"),
        ("PUT", f"{BASE}/requests.json", "GET, HEAD, POST"),
        ("POST", f"{BASE}/services.xml", "GET, HEAD"),
        ("POST", f"{BASE}/requests/T1.xml", "GET, HEAD"),
        ("DELETE", f"{BASE}/servicerequestupdates.xml", "GET, HEAD, POST"),
        ("PUT", "/v1/webhooks/telephony", "POST"),
        ("DELETE", "/livez", "GET, HEAD"),
    ],
)
async def test_a_405_names_the_allowed_methods_in_the_route_s_own_format(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    resp = await client.request(method, path)
    assert resp.status_code == 405
    assert resp.headers["allow"] == allow
    if path.endswith(".xml"):
        assert resp.headers["content-type"].startswith("text/xml")
        assert ET.fromstring(resp.content).findtext("error/code") == "405"
    elif path.endswith(".json"):
        assert resp.json() == [{"code": 405, "description": "method not allowed"}]


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("requests/.x.json", "json"),
        ("requests/a%2Fb.json", "json"),
        ("requests/T1.JSON", "json"),
        ("requests/a%2Fb.xml", "xml"),
        ("requests/a/b", "xml"),
        ("nothing-here.json", "json"),
    ],
)
async def test_every_open311_404_is_the_spec_error_array(
    client: httpx.AsyncClient, path: str, fmt: str
) -> None:
    resp = await client.get(f"{BASE}/{path}")
    assert resp.status_code == 404
    if fmt == "json":
        [error] = resp.json()
        assert error["code"] == 404 and error["description"]
    else:
        assert ET.fromstring(resp.content).findtext("error/code") == "404"


@pytest.mark.parametrize("route", ["requests", "servicerequestupdates"])
@pytest.mark.parametrize(
    "query", ["start_date=", "end_date=", "start_date=%20&end_date=2026-01-01T00:00:00Z"]
)
async def test_an_empty_date_is_a_400_not_a_missing_one(
    client: httpx.AsyncClient, route: str, query: str
) -> None:
    resp = await client.get(f"{BASE}/{route}.json?{query}")
    assert resp.status_code == 400
    [error] = resp.json()
    assert "is empty" in error["description"]


@pytest.mark.parametrize("route", ["requests", "servicerequestupdates"])
async def test_a_future_start_date_alone_is_an_empty_answer(client: httpx.AsyncClient, route: str) -> None:
    await create(client)
    resp = await client.get(f"{BASE}/{route}.json", params={"start_date": "2099-01-01T00:00:00Z"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == []
    both = {"start_date": "2099-01-01T00:00:00Z", "end_date": "2098-01-01T00:00:00Z"}
    refused = await client.get(f"{BASE}/{route}.json", params=both)
    assert refused.status_code == 400 and "start_date is after end_date" in refused.text


async def test_an_idempotency_key_reused_with_another_report_is_a_422_and_keeps_nothing(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    key = {"Idempotency-Key": "fms-42"}
    first = await client.post(f"{BASE}/requests.json", data=report(), headers=key)
    assert first.status_code == 201
    ticket_id = first.json()[0]["service_request_id"]
    again = await client.post(f"{BASE}/requests.json", data=report(), headers=key)
    assert again.status_code == 201 and again.json()[0]["service_request_id"] == ticket_id
    other = await client.post(f"{BASE}/requests.xml", data=report(description="Pothole"), headers=key)
    assert other.status_code == 422
    assert "Idempotency-Key" in (ET.fromstring(other.content).findtext("error/description") or "")
    assert await redis.xlen(streams.RECEIVED) == 1
    stored = await TicketStore(redis).get_or_raise(ticket_id)
    assert stored.text == "Burst water main on Chang'an Avenue"


async def test_a_retry_with_the_client_s_next_api_key_is_still_a_retry(redis: Redis, redis_url: str) -> None:
    keys = {"fms": [token_hash("key-2025"), token_hash("key-2026")]}
    async with intake_client(redis_url, open311_api_keys=keys) as c:
        ids = set()
        for api_key in ("key-2025", "key-2026"):
            for headers in ({}, {"Idempotency-Key": "fms-7"}):
                resp = await c.post(f"{BASE}/requests.json", data=report(api_key=api_key), headers=headers)
                assert resp.status_code == 201, resp.text
                ids.add((bool(headers), resp.json()[0]["service_request_id"]))
    assert len(ids) == 2, "one ticket per delivery key, whichever of its api keys the client used"
    assert await redis.xlen(streams.RECEIVED) == 2


async def test_media_url_is_kept_published_and_only_http(client: httpx.AsyncClient, redis: Redis) -> None:
    photo = "https://photos.example.org/p/1.jpeg?size=full"
    created = (await create(client, media_url=photo)).json()[0]["service_request_id"]
    [shown] = (await client.get(f"{BASE}/requests/{created}.json")).json()
    assert shown["media_url"] == photo
    xml = ET.fromstring((await client.get(f"{BASE}/requests/{created}.xml")).content)
    assert xml.findtext("request/media_url") == photo
    [(_, fields)] = await redis.xrange(streams.RECEIVED)
    assert decode(fields, TicketReceived).media_url == photo
    for bad in (
        "javascript:alert(1)",
        "file:///etc/passwd",
        "data:image/png;base64,AAAA",
        "ftp://example.org/x.jpg",
        "https://",
        "//example.org/x.jpg",
        "https://exa mple.org/x.jpg",
    ):
        resp = await create(client, media_url=bad, description=f"photo {bad}")
        assert resp.status_code == 400, bad
        assert "media_url" in resp.json()[0]["description"]
    assert await redis.xlen(streams.RECEIVED) == 1


async def test_a_multipart_report_with_a_photo_is_accepted(client: httpx.AsyncClient, redis: Redis) -> None:
    """FixMyStreet posts multipart/form-data when a report carries photos."""
    fields = {**report(), "media_url": "https://fms.example.org/photo/1.jpeg"}
    files = {"photo1": ("1.jpeg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")}
    resp = await client.post(f"{BASE}/requests.xml", data=fields, files=files)
    assert resp.status_code == 201, resp.text
    ticket_id = ET.fromstring(resp.content).findtext("request/service_request_id")
    [(_, raw)] = await redis.xrange(streams.RECEIVED)
    event = decode(raw, TicketReceived)
    assert (event.ticket_id, event.service_code, event.attributes) == (
        ticket_id,
        "utilities",
        {"supply": ["water"]},
    )
    assert event.media_url == "https://fms.example.org/photo/1.jpeg"
    # The same report again (a retry, with a new boundary) is the same request, as in a urlencoded form.
    again = await client.post(f"{BASE}/requests.xml", data=fields, files=files)
    assert ET.fromstring(again.content).findtext("request/service_request_id") == ticket_id
    assert await redis.xlen(streams.RECEIVED) == 1


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("multipart/form-data", b"--x\r\n", 400),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n",
            400,
        ),
        ("multipart/form-data; boundary=x", b"--x\r\n" + b"a" * 300_000, 413),
    ],
)
async def test_a_multipart_body_that_cannot_be_read_is_refused(
    client: httpx.AsyncClient, redis: Redis, content_type: str, body: bytes, status: int
) -> None:
    resp = await client.post(f"{BASE}/requests.json", content=body, headers={"content-type": content_type})
    assert resp.status_code == status
    assert resp.json()[0]["code"] == status
    assert await redis.xlen(streams.RECEIVED) == 0


async def test_open311_answers_with_the_code_the_citizen_sent(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    """Even where the classifier routed it under another category, the citizen's app knows the request by
    its own service_code, and a listing filtered on that code still shows it."""
    created = (await create(client, service_code="environment", description="Smoke from a chimney")).json()
    ticket_id = created[0]["service_request_id"]
    await dispatch_to(redis, ticket_id, "labour_bureau", category="labour_social_security")
    [shown] = (await client.get(f"{BASE}/requests/{ticket_id}.json")).json()
    assert (shown["service_code"], shown["service_name"]) == ("environment", "环境保护 / Environment")
    listed = (await client.get(f"{BASE}/requests.json", params={"service_code": "environment"})).json()
    assert [r["service_request_id"] for r in listed] == [ticket_id]


async def test_reads_need_no_api_key_and_posts_no_json(client: httpx.AsyncClient, redis: Redis) -> None:
    ticket = await TicketStore(redis).get(await new_ticket(client, "p"))
    assert ticket is not None
    assert (await client.get(f"{BASE}/requests/{ticket.ticket_id}")).status_code == 200
    assert (await client.post(f"{BASE}/requests.json", json=report())).status_code == 415


async def test_service_request_updates_follow_a_ticket_through_dispatch(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    created = (await create(client)).json()[0]["service_request_id"]
    ticket = await TicketStore(redis).get_or_raise(created)
    assert ticket.received_at is not None
    dispatch = Harness(redis, DATA_DIR / "routing.yaml")
    await dispatch.feed(
        streams.CLASSIFIED, classified_utilities(created, ticket.received_at, f"{created}-classified")
    )
    await dispatch.feed(
        streams.UPDATED,
        department_action(created, "u1", "accept", "crew on the way"),
        department_action(
            created,
            "u2",
            "resolve",
            "main repaired on 2026-11-28; called back +86 139 1234 5678 / 010-6512 3456",
        ),
    )

    listing = (await client.get(f"{BASE}/servicerequestupdates.json")).json()
    mine = [u for u in listing if u["service_request_id"] == created]
    assert [u["status"] for u in mine] == ["open", "open", "in_progress", "fixed"]
    assert [u["update_id"] for u in mine] == [f"{created}-{i}" for i in range(4)]
    assert mine[1]["description"] == "Sent: with 水务集团 / Water Utility"
    assert mine[2]["description"] == "Accepted by 水务集团 / Water Utility: crew on the way"
    assert mine[3]["description"] == (
        "Resolved by 水务集团 / Water Utility: main repaired on 2026-11-28; "
        "called back [number removed] / [number removed]"
    )
    assert all(W3C.match(u["updated_datetime"]) and u["updated_datetime"].endswith("+08:00") for u in mine)
    assert [u["updated_datetime"] for u in mine] == sorted(u["updated_datetime"] for u in mine)
    assert {u["media_url"] for u in mine} == {""}

    xml = await client.get(f"{BASE}/servicerequestupdates.xml", params={"jurisdiction_id": "any"})
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(xml.content)
    assert root.tag == "service_request_updates"
    updates = [u for u in root.findall("request_update") if u.findtext("service_request_id") == created]
    assert [u.findtext("status") for u in updates] == ["open", "open", "in_progress", "fixed"]
    assert [child.tag for child in updates[0]] == [
        "update_id",
        "service_request_id",
        "status",
        "updated_datetime",
        "description",
        "media_url",
    ]
    for text in (xml.text, json.dumps(listing, ensure_ascii=False)):
        assert "1234 5678" not in text and "13912345678" not in text and "[number removed]" in text
    only = {"service_request_id": f"{created},TNOPE", "api_key": "not-needed"}
    assert (await client.get(f"{BASE}/servicerequestupdates.json", params=only)).json() == mine


async def test_service_request_updates_are_filtered_by_window(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    phoned = await new_ticket(client, "phone-1")
    await dispatch_to(redis, phoned, "water_utility", at=now - timedelta(hours=3))
    await dispatch_to(redis, phoned, "water_utility", 2, at=now - timedelta(hours=2), status="resolved")

    async def window(start: datetime, end: datetime) -> list[tuple[str, str]]:
        params = {"start_date": start.isoformat(), "end_date": end.isoformat()}
        resp = await client.get(f"{BASE}/servicerequestupdates.json", params=params)
        assert resp.status_code == 200, resp.text
        return [(u["update_id"], u["status"]) for u in resp.json()]

    everything = await window(now - timedelta(hours=4), now + timedelta(minutes=1))
    assert everything == [(f"{phoned}-1", "open"), (f"{phoned}-2", "fixed"), (f"{phoned}-0", "open")]
    assert await window(now - timedelta(hours=2, minutes=30), now - timedelta(hours=1)) == [
        (f"{phoned}-2", "fixed")
    ]
    # Both ends count, to the second shown.
    assert await window(now - timedelta(hours=3), now - timedelta(hours=2)) == everything[:2]
    assert await window(now - timedelta(hours=26), now - timedelta(hours=25)) == []
    assert await window(now + timedelta(hours=1), now + timedelta(days=400)) == []
    assert await window(datetime(1, 1, 2, tzinfo=UTC), now - timedelta(hours=4)) == []
    default = (await client.get(f"{BASE}/servicerequestupdates")).content
    assert len(ET.fromstring(default).findall("request_update")) == 3  # the last 24 hours


@pytest.mark.parametrize(
    "query",
    [
        "start_date=yesterday",
        "end_date=2026-13-01T00:00:00Z",
        "start_date=2026-02-01T00:00:00Z&end_date=2026-01-01T00:00:00Z",
    ],
)
async def test_bad_update_windows_get_the_spec_error_array(client: httpx.AsyncClient, query: str) -> None:
    resp = await client.get(f"{BASE}/servicerequestupdates.json?{query}")
    assert resp.status_code == 400
    [error] = resp.json()
    assert error["code"] == 400 and "date" in error["description"]
    xml = await client.get(f"{BASE}/servicerequestupdates.xml?{query}")
    assert xml.status_code == 400 and ET.fromstring(xml.content).findtext("error/code") == "400"


def department_action(
    ticket_id: str, event_id: str, verb: Literal["accept", "resolve"], note: str
) -> TicketUpdated:
    return TicketUpdated(
        event_id=event_id,
        ticket_id=ticket_id,
        occurred_at=utcnow(),
        department="water_utility",
        action=verb,
        note=note,
    )


@pytest.mark.parametrize("route", ["requests", "servicerequestupdates"])
@pytest.mark.parametrize(
    "end", ["0001-01-01T00:00:00-14:00", "0001-01-02T05:00:00+12:00", "9999-12-31T23:59:59-14:00"]
)
async def test_windows_at_the_ends_of_the_calendar_are_empty_not_errors(
    client: httpx.AsyncClient, route: str, end: str
) -> None:
    resp = await client.get(f"{BASE}/{route}.json", params={"end_date": end})
    assert resp.status_code == 200 and resp.json() == []


@pytest.mark.parametrize(
    "path",
    ["discovery.xml", "services.json", "services/utilities.json", "requests.json", "servicerequestupdates"],
)
async def test_every_read_takes_a_jurisdiction_id_and_no_api_key(
    client: httpx.AsyncClient, path: str
) -> None:
    assert (
        await client.get(f"{BASE}/{path}", params={"jurisdiction_id": "city.example.org"})
    ).status_code == 200
