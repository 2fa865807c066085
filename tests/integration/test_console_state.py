"""The console's state in a real Redis: sessions end when signed out, failed sign-ins are throttled, and
an operator's correction (shared with intake's API) leaves the review queue and goes back to dispatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.classifier.duplicates import (
    SIGNATURE_FIELD,
    bucket_key,
    encode_signature,
    signature,
    similarity,
)
from services.classifier.urgency_doubt import DoubtPolicy, marked
from services.console.passwords import hash_password
from services.console.reads import REVIEW_PAGE, Reads
from services.console.sessions import LoginThrottle, Sessions
from services.console.settings import User
from services.console.similar import SUSPECT
from services.console.web import LANG_COOKIE
from services.intake.actions import Actions
from services.intake.http import HttpError
from shared import contract, streams
from shared.codec import decode
from shared.effects import StoreWrite
from shared.events import TicketClassified, TicketRerouted
from shared.store import TicketStore, keys
from tests.integration.console_support import console_client, sign_in

pytestmark = pytest.mark.redis

KEY = "a-session-key-of-at-least-32-characters"


async def test_a_session_is_signed_and_ends_on_sign_out(redis: Redis) -> None:
    sessions = Sessions(redis, KEY, 3600)
    spec = User(role="department", department="water_utility", password=hash_password("x" * 12, log2_n=10))
    session = await sessions.start("water", spec)
    cookie = sessions.cookie_value(session)
    loaded = await sessions.load(cookie)
    assert loaded == session and loaded.department == "water_utility"
    assert await sessions.load(cookie[:-2] + "xx") is None  # a tampered signature
    assert await Sessions(redis, KEY.upper(), 3600).load(cookie) is None  # another key's cookie
    assert 0 < await redis.ttl(keys.console_session(session.session_id)) <= 3600
    await sessions.end(session)
    assert await sessions.load(cookie) is None  # revoked server-side: the cookie alone is worth nothing


async def test_failed_sign_ins_are_throttled_per_name_and_cleared_by_success(redis: Redis) -> None:
    throttle = LoginThrottle(redis, attempts=3, window_seconds=60)
    who = ["user:operator", "client:10.0.0.1"]
    for _ in range(2):
        await throttle.failed(who)
    assert await throttle.wait_seconds(who) == 0
    await throttle.failed(who)
    assert 0 < await throttle.wait_seconds(["user:operator"]) <= 60
    await throttle.succeeded("operator")
    assert await throttle.wait_seconds(["user:operator"]) == 0
    # An address (many staff behind one NAT) is allowed ten times as many.
    assert await throttle.wait_seconds(["client:10.0.0.1"]) == 0
    for _ in range(27):
        await throttle.failed(["client:10.0.0.1"])
    assert await throttle.wait_seconds(["client:10.0.0.1"]) > 0


async def test_a_correction_leaves_the_review_queue_and_goes_back_to_dispatch(redis: Redis) -> None:
    store = TicketStore(redis)
    fields = {"status": "dispatched", "department": "water_utility", "category": "utilities", "text": "停水"}
    for scope in contract.SCOPES:  # each field by its owner, as the services write them
        mine = {k: v for k, v in fields.items() if contract.FIELDS[k].owner == scope}
        await store.apply(StoreWrite("T1", f"e1-{scope}", fields=mine), scope=scope)
    await redis.zadd(keys.review, {"T1": 1.0})
    actions = Actions(
        redis, stream_maxlen=10_000, categories=["utilities", "transport"], departments=["water_utility"]
    )
    fixed = await actions.correct_category("op-1", "T1", "transport", None)
    assert (fixed.previous, fixed.category, fixed.duplicate) == ("utilities", "transport", False)
    assert await redis.zcard(keys.review) == 0
    (entry,) = await redis.xrange(streams.REROUTED)
    event = decode(entry[1], TicketRerouted)
    assert (event.department, event.category, event.operator) == (None, "transport", "op-1")
    assert await redis.xlen(keys.labels) == 1
    # A retry changes nothing and publishes nothing twice.
    again = await actions.correct_category("op-1", "T1", "transport", None)
    assert again.duplicate and await redis.xlen(streams.REROUTED) == 1 and await redis.xlen(keys.labels) == 1
    with pytest.raises(HttpError) as refused:
        await actions.correct_category("op-1", "T1", "no_such_category", None)
    assert refused.value.status == 422


async def test_a_ticket_re_routed_by_an_operator_leaves_the_review_queue(redis: Redis) -> None:
    store = TicketStore(redis, record=None)
    fields = {"status": "dispatched", "department": "water_utility", "category": "utilities", "text": "停水"}
    for scope in contract.SCOPES:
        mine = {k: v for k, v in fields.items() if contract.FIELDS[k].owner == scope}
        await store.apply(StoreWrite("T2", f"e1-{scope}", fields=mine), scope=scope)
    await redis.zadd(keys.review, {"T2": 1.0})
    actions = Actions(
        redis, stream_maxlen=10_000, categories=["utilities"], departments=["water_utility", "housing_bureau"]
    )
    await actions.reroute("op-1", "T2", "housing_bureau", "物业负责", None)
    assert await redis.zcard(keys.review) == 0 and await redis.xlen(streams.REROUTED) == 1
    assert await redis.xlen(keys.labels) == 0  # the category was not reviewed: nothing to learn


async def test_the_review_queue_shows_emergencies_first_then_the_oldest(redis: Redis) -> None:
    store = TicketStore(redis, record=None)
    for n, urgency in enumerate(["general", "general", "emergency", "general"]):
        ticket_id = f"R{n}"
        await store.apply(StoreWrite(ticket_id, "r", fields={"text": "…"}), scope=contract.INTAKE)
        await store.apply(StoreWrite(ticket_id, "c", fields={"urgency": urgency}), scope=contract.CLASSIFIER)
        await redis.zadd(keys.review, {ticket_id: float(n)})
    rows, total = await Reads(redis, min_volume=20, record=None).review_queue(datetime.now(UTC))
    assert [r.ticket.ticket_id for r in rows] == ["R2", "R0", "R1", "R3"] and total == 4


async def test_a_long_queue_says_only_its_first_page_is_shown(redis: Redis, redis_url: str) -> None:
    store = TicketStore(redis, record=None)
    for n in range(REVIEW_PAGE + 5):
        await store.apply(StoreWrite(f"Q{n}", "r", fields={"text": "…"}), scope=contract.INTAKE)
        await redis.zadd(keys.review, {f"Q{n}": float(n)})
    async with console_client(redis_url) as console:
        await sign_in(console, "operator")
        page = (await console.get("/operator/queue.part")).text
    assert page.count('class="ticket-card"') == REVIEW_PAGE
    assert f"显示前 {REVIEW_PAGE} 件" in page and f'id="review-total">{REVIEW_PAGE + 5}<' in page


async def test_a_review_card_names_the_open_ticket_it_may_repeat(redis: Redis, redis_url: str) -> None:
    store = TicketStore(redis, record=None)
    now = datetime.now(UTC)
    texts = {
        "D1": "湖滨路的路灯不亮了，晚上很黑，希望尽快修好。",  # the earlier report
        "D2": "湖滨路路灯坏了好几天，晚上很黑。",  # told in other words: on review
        "D3": "工地夜间施工噪音扰民。",  # on review, like nothing before it
    }
    for n, (ticket_id, text) in enumerate(texts.items()):
        at = now - timedelta(hours=3 - n)
        await store.apply(
            StoreWrite(ticket_id, "r", fields={"text": text, "received_at": at.isoformat()}),
            scope=contract.INTAKE,
        )
        await store.apply(
            StoreWrite(ticket_id, "d", fields={"status": "dispatched"}), scope=contract.DISPATCH
        )
        classified = {
            "district": "donghu",
            "category": "utilities",
            SIGNATURE_FIELD: encode_signature(signature(text)),
        }
        await store.apply(StoreWrite(ticket_id, "c", fields=classified), scope=contract.CLASSIFIER)
        await redis.zadd(bucket_key(("donghu", "utilities")), {ticket_id: at.timestamp()})
    await redis.zadd(keys.review, {"D2": 1.0, "D3": 2.0})
    alike = similarity(signature(texts["D1"]), signature(texts["D2"]))
    assert SUSPECT <= alike < 0.5  # alike enough to ask, not enough for the classifier
    async with console_client(redis_url) as console:
        await sign_in(console, "operator")
        page = (await console.get("/operator/queue.part")).text
    d2, d3 = page.split('data-ticket="D2"')[1].split('data-ticket="D3"')
    assert f'<a href="/tickets/D1">D1</a> {round(alike * 100)}%' in d2 and "疑似重复" in d2
    assert "疑似重复" not in d3


async def test_the_ticket_page_asks_to_confirm_a_category_only_while_it_awaits_review(
    redis: Redis, redis_url: str
) -> None:
    store = TicketStore(redis, record=None)
    cases = {"R1": ("1", None), "R2": ("0", None), "R3": ("1", "operator")}
    for ticket_id, (needs_review, source) in cases.items():
        await store.apply(StoreWrite(ticket_id, "r", fields={"text": "路灯不亮"}), scope=contract.INTAKE)
        fields = {"category": "utilities", "needs_review": needs_review}
        await store.apply(StoreWrite(ticket_id, "c", fields=fields), scope=contract.CLASSIFIER)
        if source:
            write = StoreWrite(ticket_id, "o", fields={"category_source": source})
            await store.apply(write, scope=contract.OPERATOR)
    async with console_client(redis_url) as console:
        await sign_in(console, "operator")
        pages = {t: (await console.get(f"/tickets/{t}")).text for t in cases}
    asked = {t for t, page in pages.items() if 'action="/tickets/' + t + '/confirm"' in page}
    assert asked == {"R1"}  # unsure and unanswered; R2 was sure, R3 already answered
    assert all(f'action="/tickets/{t}/category"' in page for t, page in pages.items())


async def reviewed_timeline(
    redis: Redis, redis_url: str, ticket_id: str, history: dict[str, str], lang: str = "zh"
) -> str:
    """The timeline of a ticket after the urgency reviewer's `history` entry (its fields written with it)."""
    store = TicketStore(redis, record=None)
    await store.apply(
        StoreWrite(ticket_id, "r", fields={"text": "有人倒在楼道里不动了"}), scope=contract.INTAKE
    )
    names = ("urgency", "urgency_cue", "category")
    fields = {k: history[k] for k in names if k in history}
    if "category" in fields:
        fields["category_source"] = "hazard"
    await store.apply(StoreWrite(ticket_id, "u", fields=fields, history=history), scope=contract.CLASSIFIER)
    async with console_client(redis_url) as console:
        await sign_in(console, "operator")
        console.cookies.set(LANG_COOKIE, lang)
        return (await console.get(f"/tickets/{ticket_id}")).text.split('class="timeline"')[1]


RAISED = {
    "at": "2026-12-03T20:00:00+00:00",
    "event": "urgency_raised",
    "summary": "urgency general -> emergency: the e5 review scored it 0.97 (threshold 0.91)",
    "urgency": "emergency",
    "urgency_cue": "e5:0.97",
}
HAZARD = {
    "hazard": "medical",
    "hazard_confidence": "0.94",
    "category": "health",
    "previous_category": "utilities",
}


async def test_a_raised_urgency_shows_in_the_timeline_in_the_pages_language(
    redis: Redis, redis_url: str
) -> None:
    timeline = await reviewed_timeline(redis, redis_url, "U1", RAISED)
    assert "紧急" in timeline and "e5:0.97" in timeline and "the e5 review" not in timeline
    assert "险情" not in timeline  # a raise from before hazards were recognised


async def test_a_raise_filed_under_the_hazards_category_says_why_in_the_timeline(
    redis: Redis, redis_url: str
) -> None:
    zh = await reviewed_timeline(redis, redis_url, "U2", RAISED | HAZARD)
    assert "险情: 急病/受伤" in zh and "94%" in zh and "水电气暖 → 卫生计生" in zh
    en = await reviewed_timeline(redis, redis_url, "U3", RAISED | HAZARD, lang="en")
    assert "hazard: medical" in en and "Water, power, gas and heating → Health and family planning" in en


async def test_a_possible_false_alarm_waits_on_the_review_queue_with_its_reason(
    redis: Redis, redis_url: str
) -> None:
    store = TicketStore(redis, record=None)
    text = "没人被困，电梯停在一楼不动了，麻烦物业找人修"
    at = datetime.now(UTC) - timedelta(minutes=3)
    await store.apply(StoreWrite("F1", "r", fields={"text": text}), scope=contract.INTAKE)
    fields = {"urgency": "emergency", "urgency_cue": "combo:人+不动了"}
    await store.apply(StoreWrite("F1", "c", fields=fields), scope=contract.CLASSIFIER)
    event = TicketClassified(
        event_id="c-F1",
        ticket_id="F1",
        occurred_at=at,
        category="housing",
        confidence=0.9,
        urgency="emergency",
        urgency_cue="combo:人+不动了",
        model_version="m",
        received_at=at,
    )
    (write,) = marked(event, 0.03, ["negation:没"], DoubtPolicy(), datetime.now(UTC)).writes
    await store.apply(write, scope=contract.CLASSIFIER)  # as the urgency reviewer writes it
    async with console_client(redis_url) as console:
        await sign_in(console, "operator")
        queue = (await console.get("/operator/queue.part")).text
        page = (await console.get("/tickets/F1")).text
    card = queue.split('data-ticket="F1"')[1]
    assert "疑似误报" in card and "e5:0.03 没" in card
    timeline = page.split('class="timeline"')[1]
    assert "疑似误报" in timeline and "紧急" in timeline and "possible false alarm" not in timeline
    assert (await store.get("F1")).urgency == "emergency"  # type: ignore[union-attr]  # never lowered


async def test_an_emergency_refiled_by_its_hazard_says_why_in_the_timeline(
    redis: Redis, redis_url: str
) -> None:
    refiled = {
        "at": RAISED["at"],
        "event": "hazard_refiled",
        "summary": "hazard medical (0.94): ...",
        **HAZARD,
    }
    zh = await reviewed_timeline(redis, redis_url, "U4", refiled)
    assert "按险情改分类" in zh and "险情: 急病/受伤" in zh and "水电气暖 → 卫生计生" in zh
    assert "→ 紧急" not in zh
