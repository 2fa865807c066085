"""The console in a real browser (Debian's Chromium, headless, driven by Playwright) against the whole
system as real processes: each role's main flow, the refusals, and the screenshots in docs/."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from services.insight.plan_data import PLAN
from services.insight.problem_store import ACTIONS, PROBLEMS
from services.insight.problems import Evaluation, Problem
from services.intake.app import IntakeSettings
from tools.demo import make_calls, post_calls, wait_dispatched
from tools.runner import Stack

pytestmark = [pytest.mark.redis, pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
if shutil.which(CHROMIUM) is None:  # .ci/run installs it; a developer machine may not have it
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

# One text per test, each in its own district, so none is taken for a duplicate of another.
POTHOLE = "东湖区湖滨路的路面坏了，有一个大坑，旁边的路灯也不亮。"
STREETLIGHTS = "西山区松林路的路灯坏了一排，晚上一片漆黑。"
SHED = "南港区码头街道有人在人行道上违章搭建棚子。"
MANHOLE = "北苑区科技园门口的井盖丢了，道路施工也没有围挡。"
AMBIGUOUS = [
    "老旧小区外墙瓷砖脱落，砸坏了停在下面的车，存在安全隐患。",
    "A restaurant on Elm Road has rats in the kitchen, I saw them through the window.",
    "楼下的店铺每天晚上很吵，还占道经营，物业也不管。",
]


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    sync_redis.Redis.from_url(redis_url).flushdb()
    logs = tmp_path_factory.mktemp("console-logs")
    # Polling every half second keeps the "updates without reloading" checks quick.
    with Stack(redis_url=redis_url, log_dir=logs, extra_env={"HOTLINE_CONSOLE_POLL_SECONDS": "0.5"}) as s:
        yield s
    text = "".join(p.read_text(errors="replace") for p in logs.glob("console.log"))
    assert "Traceback" not in text


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def db(stack: Stack) -> sync_redis.Redis:
    assert stack.redis_url is not None
    return sync_redis.Redis.from_url(stack.redis_url, decode_responses=True)


def post(stack: Stack, *texts: str) -> list[str]:
    calls = [
        {"call_id": f"console-{uuid.uuid4().hex[:10]}", "caller": "+8613800000000", "transcript": text}
        for text in texts
    ]
    assert stack.redis_url is not None
    url = stack.redis_url

    async def posted() -> list[str]:
        tickets = await post_calls(stack.url_of("intake"), IntakeSettings().webhook_secrets[0], calls)
        ids = [tickets[c["call_id"]] for c in calls]
        assert (await wait_dispatched(url, ids, wait_seconds=60)).missing == []
        return ids

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, posted()).result()


def sign_in(browser: Any, stack: Stack, user: str, width: int = 1366) -> Any:
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.goto(f"{stack.url_of('console')}/login")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", f"hotline-dev-{user}")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/(operator|department|supervisor)$"))
    return page


def eventually(check: Callable[[], Any], what: str, within: float = 20.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f} s: {what}")
        time.sleep(0.2)


def test_unauthenticated_pages_redirect_to_sign_in_and_bad_passwords_are_refused(
    stack: Stack, browser: Any
) -> None:
    page = browser.new_context().new_page()
    page.goto(f"{stack.url_of('console')}/supervisor")
    assert "/login?next=%2Fsupervisor" in page.url
    page.fill("input[name=user]", "supervisor")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator("[role=alert]")).to_be_visible()
    assert "/login" in page.url


def test_operator_confirms_from_the_review_queue_and_a_correction_redispatches(
    stack: Stack, browser: Any, db: sync_redis.Redis
) -> None:
    pothole, *_ = post(stack, POTHOLE, *AMBIGUOUS)
    first = db.hget(f"hotline:ticket:{pothole}", "department")
    # Corrected to a category only one department handles, the ticket must move there.
    category, target = ("transport", "transport_bureau")
    if first == target:
        category, target = ("health", "health_commission")
    waiting = db.zrange("hotline:review", 0, -1)
    assert waiting, "the classifier put no ticket on the review queue"

    page = sign_in(browser, stack, "operator")
    assert page.url.endswith("/operator")
    card = page.locator(f"article[data-ticket='{waiting[0]}']")
    assert card.locator(".top3 li").count() == 3  # the top 3 categories with their confidences
    assert re.search(r"\d+%", card.locator(".top3").inner_text())
    before = int(page.locator("#review-total").inner_text())
    card.locator("form[action$='/confirm'] button").click()
    eventually(lambda: page.locator(f"article[data-ticket='{waiting[0]}']").count() == 0, "confirmed")
    assert int(page.locator("#review-total").inner_text()) == before - 1
    assert db.hget(f"hotline:ticket:{waiting[0]}", "category_source") == "operator"

    page.goto(f"{stack.url_of('console')}/tickets/{pothole}")
    page.select_option("form[action$='/category'] select", category)
    page.click("form[action$='/category'] button")
    expect(page.locator(".notice")).to_be_visible()
    eventually(
        lambda: db.hget(f"hotline:ticket:{pothole}", "department") == "transport_bureau", "re-dispatch"
    )
    page.reload()
    assert "交通运输局" in page.locator(".facts").inner_text()
    assert db.xlen("hotline:labels") >= 2  # the confirmation and the correction are training labels

    # Search reads the record (PostgreSQL), which the recorder fills a moment after each change.
    def found() -> bool:
        page.goto(f"{stack.url_of('console')}/search?q=路灯+大坑&district=donghu")
        return page.locator(f"table.list a[href='/tickets/{pothole}']").count() == 1

    eventually(found, "the ticket found by its words and district")
    page.goto(f"{stack.url_of('console')}/search?q=路灯+大坑&district=xishan")
    expect(page.locator(".empty")).to_be_visible()


def test_a_department_rejects_another_resolves_and_the_first_cannot_open_it_any_more(
    stack: Stack, browser: Any, db: sync_redis.Redis
) -> None:
    (ticket,) = post(stack, STREETLIGHTS)
    first = db.hget(f"hotline:ticket:{ticket}", "department")
    assert first is not None
    page = sign_in(browser, stack, first)
    assert page.url.endswith("/department")
    card = page.locator(f"article[data-ticket='{ticket}']")
    assert card.is_visible()
    card.locator("form[action$='/reject'] input[name=note]").fill("不属于本单位职责，应由街道处理")
    card.locator("form[action$='/reject'] button").click()
    second = eventually(
        lambda: (d := db.hget(f"hotline:ticket:{ticket}", "department")) != first and d, "re-dispatch"
    )
    # Gone from the first department's inbox without a reload, and closed to it by URL.
    eventually(lambda: page.locator(f"article[data-ticket='{ticket}']").count() == 0, "left the inbox")
    answer = page.goto(f"{stack.url_of('console')}/tickets/{ticket}")
    assert answer is not None and answer.status == 403

    other = sign_in(browser, stack, second)
    other.locator(f"article[data-ticket='{ticket}'] form[action$='/resolve'] input[name=note]").fill("已修复")
    other.locator(f"article[data-ticket='{ticket}'] form[action$='/resolve'] button").click()
    eventually(lambda: db.hget(f"hotline:ticket:{ticket}", "status") == "resolved", "resolved")


def test_a_form_without_its_csrf_token_is_refused(stack: Stack, browser: Any, db: sync_redis.Redis) -> None:
    (ticket,) = post(stack, SHED)
    department = db.hget(f"hotline:ticket:{ticket}", "department")
    page = sign_in(browser, stack, str(department))
    url = f"{stack.url_of('console')}/tickets/{ticket}/accept"
    refused = page.request.post(url, form={"next": "/department"}, max_redirects=0)
    assert refused.status == 403
    forged = page.request.post(url, form={"csrf": "forged", "next": "/department"}, max_redirects=0)
    assert forged.status == 403
    assert db.hget(f"hotline:ticket:{ticket}", "status") == "dispatched"


def test_the_supervisor_sees_the_response_rate_change_without_reloading(
    stack: Stack, browser: Any, db: sync_redis.Redis
) -> None:
    (ticket,) = post(stack, MANHOLE)
    department = str(db.hget(f"hotline:ticket:{ticket}", "department"))
    page = sign_in(browser, stack, "supervisor")
    assert page.url.endswith("/supervisor")
    cell = page.locator(f"#rates-department tr[data-unit='{department}'] td[data-rate='response']")
    before = cell.get_attribute("title")
    assert before is not None
    done, total = (int(n) for n in before.split(" / "))
    assert page.locator("#map polygon").count() >= 4  # the gazetteer's districts

    department_page = sign_in(browser, stack, department)
    department_page.locator(f"article[data-ticket='{ticket}'] form[action$='/accept'] button").click()
    eventually(lambda: cell.get_attribute("title") == f"{done + 1} / {total}", "the rate moved", within=20)


def test_the_supervisor_sees_problems_with_their_verdicts_and_the_plan_and_sends_a_work_order(
    stack: Stack, browser: Any, db: sync_redis.Redis
) -> None:
    now = datetime.now(UTC)
    open_one = Problem(
        problem_id=f"p-{uuid.uuid4().hex[:8]}",
        key="estate:润芳园|environment",
        category="environment",
        district="A3区",
        place="estate:润芳园",
        label="润芳园小区临街门面油烟扰民",
        first_seen=now,
        last_seen=now,
    )
    for n in range(4):
        open_one.attach(f"T-console-{n}", now)
    worked = open_one.model_copy(
        update={
            "problem_id": f"p-{uuid.uuid4().hex[:8]}",
            "label": "丽发新城搅拌站噪音",
            "status": "evaluated",
            "evaluation": Evaluation(
                days=14,
                expected=30.0,
                expected_lower=20.0,
                expected_upper=40.0,
                observed=2,
                avoided=28.0,
                control_ratio=1.0,
                verdict="worked",
                at=now,
            ),
        }
    )
    for p in (open_one, worked):
        db.hset(PROBLEMS, p.problem_id, p.model_dump_json())
    hour = {"start": now.isoformat(), "calls": 190.0, "agents_erlang_c": 17, "agents_erlang_a": 15}
    short = {"department": "urban_management", "day": "2026-12-06", "expected": 190.0, "capacity": 0.0}
    targets = {"level": 0.8, "within_seconds": 20, "handle_seconds": 240, "handle_seconds_source": "measured"}
    plan = {"targets": targets, "hours": [hour], "departments": [{**short, "backlog": 190.0, "short": True}]}
    db.set(PLAN, json.dumps(plan))

    page = sign_in(browser, stack, "supervisor")
    rows = page.locator("#problems tr.problem")
    expect(page.locator(f"#problems tr[data-problem='{worked.problem_id}'] .verdict")).to_have_text("worked")
    expect(page.locator("#plan tr.plan-hour").first).to_contain_text("17")
    expect(page.locator("#plan li.short-day")).to_contain_text("urban_management")
    assert rows.count() >= 2
    page.locator(f"#problems tr[data-problem='{open_one.problem_id}'] button").click()
    page.wait_for_url(re.compile(r"msg=work"))
    order = eventually(lambda: db.hget(ACTIONS, open_one.problem_id), "the action is recorded")
    ticket_id = json.loads(order)["ticket_id"]
    # The work order goes round the loop like a call: classified and dispatched to a department.
    eventually(lambda: db.hget(f"hotline:ticket:{ticket_id}", "department"), "the order is dispatched", 60)
    assert db.hget(f"hotline:ticket:{ticket_id}", "channel") == "proactive"


def test_english_and_a_phone_sized_screen(stack: Stack, browser: Any) -> None:
    page = sign_in(browser, stack, "operator", width=390)
    page.click("a.lang")
    expect(page.locator("h1")).to_have_text("Review queue")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    # The 三率 tables scroll sideways in their cards: a department's name stays on one line.
    supervisor = sign_in(browser, stack, "supervisor", width=390)
    assert supervisor.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    unit = supervisor.locator("#rates-department td.unit").first.bounding_box()
    assert unit is not None and unit["height"] < 45, unit


def test_each_roles_main_page_with_a_morning_of_calls_for_the_readme(
    stack: Stack, browser: Any, db: sync_redis.Redis
) -> None:
    """The screenshots in docs/ (shown in the README), after a few of the demo's sample calls."""
    vague = [
        "家门口的问题一直没人管，希望尽快处理。",
        "There is a problem near my building that nobody deals with.",
        "小区里的事情很麻烦，物业和街道互相推诿。",
    ]
    post(stack, *vague, *(call["transcript"] for call in make_calls(16, seed=18)))
    busiest = max(
        {
            str(db.hget(f"hotline:ticket:{t}", "department"))
            for t in db.zrange("hotline:tickets:by_created", 0, -1)
        }
        - {"None"},
        key=lambda d: db.zcard(f"hotline:dept:{d}:open"),
    )
    for user, shot in (("operator", "operator"), (busiest, "department"), ("supervisor", "supervisor")):
        page = sign_in(browser, stack, user)
        page.wait_for_selector("#count-open")  # the live counts in the header have loaded
        page.screenshot(path=str(DOCS / f"console-{shot}.png"), full_page=True)
