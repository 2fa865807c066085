"""The console's pure parts: password hashing, settings, times left, search filters, the map, words."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.console.charts import district_map, forecast_svg
from services.console.directory import Directory, load_districts
from services.console.i18n import WORDS, event_name, pick, translate
from services.console.passwords import hash_password, is_password_hash, verify_password
from services.console.search import Query
from services.console.settings import ConsoleSettings, User
from services.console.web import TEMPLATES, safe_next, time_left
from shared.settings import DATA_DIR

NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)


def test_a_password_is_stored_salted_and_slow_and_only_its_own_password_matches() -> None:
    stored = hash_password("correct horse battery", log2_n=10)
    again = hash_password("correct horse battery", log2_n=10)
    assert stored != again  # a fresh salt each time
    assert stored.startswith("scrypt$10$8$1$") and "correct" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert is_password_hash(stored) and not is_password_hash("correct horse battery")
    with pytest.raises(ValueError):
        verify_password("x", "scrypt$40$8$1$AAAA$AAAA")  # parameters a hash must not ask for


def test_users_are_configured_with_hashes_only_and_departments_name_one_department() -> None:
    good = hash_password("a long password", log2_n=10)
    assert User(role="department", department="water_utility", password=good).department == "water_utility"
    with pytest.raises(ValidationError, match="scrypt"):
        User(role="operator", password="a long password")
    with pytest.raises(ValidationError, match="one department"):
        User(role="department", password=good)
    with pytest.raises(ValidationError, match="console_users, console_session_key"):
        ConsoleSettings(require_production_credentials=True)


def test_time_left_counts_down_and_then_says_how_late() -> None:
    assert time_left(NOW + timedelta(hours=2, minutes=5), NOW, "en") == "2 h 5 min"
    assert time_left(NOW + timedelta(days=3, hours=1), NOW, "zh") == "3 天 1 小时"
    assert time_left(NOW - timedelta(minutes=35), NOW, "en") == "Overdue 35 min"
    assert time_left(None, NOW, "en") == "-"


def test_only_local_paths_are_followed_after_sign_in() -> None:
    assert safe_next("/tickets/T1", "/") == "/tickets/T1"
    for hostile in ("https://evil.example/", "//evil.example/", "/\\evil.example", None, ""):
        assert safe_next(hostile, "/") == "/"


def test_search_filters_by_every_field_and_by_all_the_words() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    q = Query.of({"q": "路灯 不亮", "district": "donghu", "status": "dispatched", "from": "2026-12-01"}, zone)
    ticket: dict[str, str | None] = {
        "text": "湖滨路的路灯不亮了",
        "district": "donghu",
        "status": "dispatched",
    }
    assert q.given and q.matches(ticket)
    assert not q.matches({**ticket, "district": "xishan"})
    assert not q.matches({**ticket, "text": "路灯坏了", "title": None})
    since, until = q.window(NOW)
    assert since == datetime(2026, 11, 30, 16, 0, tzinfo=UTC) and until == NOW
    assert Query.of({"from": "not a date"}, zone).since is None
    assert Query.of({}, zone).given is False
    assert Query.of({"to": "2026-12-02"}, zone).until == date(2026, 12, 2)


def test_the_map_draws_every_district_shaded_by_its_open_tickets() -> None:
    districts = load_districts(DATA_DIR / "gazetteer.yaml")
    view = district_map(districts, {"donghu": 10, "xishan": 5}, {"donghu": 2}, lambda d: d.name("zh"))
    by_code = {s.code: s for s in view.shapes}
    assert set(by_code) == {"donghu", "xishan", "nangang", "beiyuan"}
    assert by_code["donghu"].name == "东湖区" and by_code["donghu"].hotspots == 2
    assert by_code["donghu"].fill != by_code["xishan"].fill != by_code["beiyuan"].fill
    assert len(by_code["nangang"].points.split()) == 6  # the L-shaped district keeps its six corners
    assert (view.width, view.height) == (287, 420)  # the city is 0.2 degrees wide and 0.3 high
    for s in view.shapes:
        xs = [float(p.split(",")[0]) for p in s.points.split()]
        assert all(0 <= x <= view.width for x in xs)


def test_the_forecast_chart_needs_a_whole_forecast() -> None:
    days = [f"2026-12-{d:02d}" for d in range(4, 11)]
    svg = forecast_svg({"days": days, "point": [5.0] * 7, "lower": [3.0] * 7, "upper": [8.0] * 7})
    assert svg.startswith("<svg") and svg.count("<circle") == 7 and "12-04" in svg
    assert forecast_svg({"days": days, "point": [1.0]}) == ""


def test_names_come_in_the_pages_language_and_streets_show_as_names() -> None:
    names = Directory(ConsoleSettings())
    assert names.category("transport", "zh") == "交通运输"
    assert names.category("transport", "en") == "Transport"
    assert names.department("water_utility", "en") == "Water Utility"
    assert names.area("donghu_hubin", "zh") == "湖滨街道" and names.area("donghu_hubin", "en") == "Hubin Road"
    assert names.area("unknown", "zh") == "未知"
    assert names.area("not_in_gazetteer", "en") == "not_in_gazetteer"
    assert pick("en", "城市管理局 / Urban Management Bureau") == "Urban Management Bureau"
    assert translate("en", "too_many_logins", seconds=30).endswith("30 s")
    assert event_name("zh", "dispatched") == "派单" and event_name("en", "reject") == "Rejected"
    assert event_name("zh", "something_new") == "something_new"  # an event no one named yet shows as written


def test_the_records_search_binds_every_value_and_escapes_wildcards() -> None:
    from services.console.history import statements

    q = Query.of({"q": "100%_路灯 x", "status": "resolved", "department": "water_utility"}, ZoneInfo("UTC"))
    (recent, recent_args), (indexed, indexed_args) = statements(q, NOW - timedelta(days=1), NOW)
    for sql in (recent, indexed):
        assert "100%" not in sql and "路灯" not in sql and "water_utility" not in sql
        assert sql.endswith("ORDER BY received_at DESC LIMIT 100")
    assert recent_args[2:] == ["resolved", "water_utility", "%100\\%\\_路灯%", "%x%"]
    assert (
        "ORDER BY received_at DESC LIMIT 1000) AS recent WHERE" in recent and "hotline_bigrams" not in recent
    )
    # Every word is looked up by its keys (a single character is a key too) and checked by ILIKE.
    assert indexed_args == [*recent_args, "100%_路灯", "x"]
    assert (
        "FROM ticket_words WHERE received_at >= $1 AND received_at < $2"
        " AND words @> hotline_word_keys($7) AND words @> hotline_word_keys($8)"
        " UNION ALL SELECT ticket_id, received_at FROM ticket_words_pending" in indexed
    )
    assert indexed.count("@>") == 2 and indexed.count("ILIKE") == 2
    (only_filters, _), *more = statements(Query.of({"district": "donghu"}, ZoneInfo("UTC")), NOW, NOW)
    assert more == [] and "ILIKE" not in only_filters


def test_every_word_a_template_names_has_both_languages() -> None:
    word = re.compile(r"\bt\('([a-z0-9_]+)'\s*[,)]")  # t('key') and t('key', n=...), not t('by_' + dim)
    named = {k for f in TEMPLATES.glob("*.html") for k in word.findall(f.read_text())}
    assert named and sorted(named - set(WORDS)) == []
