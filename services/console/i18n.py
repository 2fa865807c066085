"""The console's words in Chinese (the default) and English. A missing English word falls back to the
Chinese one and a missing key shows as itself, so a gap is visible rather than an error page."""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

WORDS: dict[str, tuple[str, str]] = {
    "app": ("12345 热线工作台", "12345 Hotline console"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "user": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "bad_login": ("用户名或密码错误", "Wrong user name or password"),
    "too_many_logins": (
        "登录失败次数过多，请 {seconds} 秒后再试",
        "Too many failed sign-ins: retry in {seconds} s",
    ),
    "bad_form": ("表单已过期，请刷新页面后重试", "This form has expired: reload the page and try again"),
    "forbidden": ("无权查看此工单", "You may not open this ticket"),
    "not_found": ("未找到", "Not found"),
    "bad_month": ("月份格式应为 YYYY-MM", "A month is written YYYY-MM"),
    "role_operator": ("话务员", "Operator"),
    "role_department": ("承办单位", "Department"),
    "role_supervisor": ("督办", "Supervisor"),
    "review_queue": ("待复核工单", "Review queue"),
    "review_hint": (
        "分类置信度低于阈值的工单和疑似误报的紧急工单：确认、改分类或改派",
        "Tickets the classifier was unsure of, and emergencies that may be false alarms: confirm, correct "
        "the category or re-route",
    ),
    "queue_empty": ("暂无待处理工单", "Nothing waiting"),
    "first_shown": ("显示前 {n} 件", "the first {n} shown"),
    "suspected_duplicate": ("疑似重复", "May repeat"),
    "possible_false_alarm": ("疑似误报，请核实紧急程度", "Possible false alarm: check the urgency"),
    "search": ("工单查询", "Search tickets"),
    "search_text": ("编号或内容", "Id or words"),
    "from": ("起", "From"),
    "to": ("止", "To"),
    "any": ("全部", "Any"),
    "status": ("状态", "Status"),
    "district": ("区", "District"),
    "street": ("街道", "Street"),
    "category": ("分类", "Category"),
    "department": ("承办单位", "Department"),
    "urgency": ("紧急程度", "Urgency"),
    "received_at": ("来电时间", "Received"),
    "received": ("已受理", "Received"),  # the status
    "deadline": ("时限", "Deadline"),
    "time_left": ("剩余时间", "Time left"),
    "overdue": ("已超时", "Overdue"),
    "escalated": ("已升级", "Escalated"),
    "duplicate_of": ("重复件，原工单", "Duplicate of"),
    "repeats": ("重复来电", "Repeat reports"),
    "confidence": ("置信度", "Confidence"),
    "top3": ("候选分类", "Top 3 categories"),
    "cue": ("紧急程度依据", "Urgency decided by"),
    "details": ("详情", "Details"),
    "hazard": ("险情", "hazard"),
    "place": ("地点", "Place"),
    "confirm": ("确认分类", "Confirm"),
    "correct": ("改分类", "Correct"),
    "reroute": ("改派", "Re-route"),
    "reason": ("理由", "Reason"),
    "note": ("说明", "Note"),
    "accept": ("签收", "Accept"),
    "reject": ("退单", "Reject"),
    "resolve": ("办结", "Resolve"),
    "reject_reason": ("退单理由（必填）", "Why (required)"),
    "resolve_note": ("办理结果", "What was done"),
    "timeline": ("处理过程", "Timeline"),
    "ticket": ("工单", "Ticket"),
    "text": ("诉求内容", "Complaint"),
    "address": ("地址", "Address"),
    "caller": ("来电人", "Caller"),
    "channel": ("渠道", "Channel"),
    "done": ("已提交，稍后更新", "Sent: the ticket updates in a moment"),
    "inbox": ("待办工单", "Inbox"),
    "inbox_hint": ("按时限排序；红色为已超时", "By deadline; red is overdue"),
    "open_tickets": ("在办工单", "Open tickets"),
    "waiting_review": ("待复核", "Waiting for review"),
    "sanlv": ("三率", "The three rates"),
    "response": ("响应率", "Response"),
    "resolution": ("解决率", "Resolution"),
    "satisfaction": ("满意率", "Satisfaction"),
    "ratio": ("标准化比", "O/E"),
    "ratio_hint": (
        "实际 / 按案件构成的预期（大于 1 即好于同类单位）",
        "Observed / expected for its case mix (above 1: better than its peers)",
    ),
    "rank": ("排名", "Rank"),
    "cases": ("件数", "Cases"),
    "city": ("全市", "City"),
    "by_department": ("按承办单位", "By department"),
    "by_district": ("按区", "By district"),
    "by_category": ("按分类", "By category"),
    "below_volume": ("件数不足，不排名", "Too few cases to rank"),
    "hotspots": ("热点与激增", "Hotspots and surges"),
    "no_hotspots": ("暂无热点", "No open hotspot"),
    "peak": ("峰值", "Peak"),
    "expected": ("预期", "Expected"),
    "since": ("开始", "Since"),
    "forecast": ("未来 7 天来电预测", "7-day forecast"),
    "no_forecast": ("历史数据不足，暂无预测", "Not enough history for a forecast yet"),
    "chronic": ("每月一题候选", "Problem of the month candidates"),
    "problems": ("未诉先办：问题", "Problems (act before the calls)"),
    "no_problems": ("暂无问题", "No problem found yet"),
    "calls": ("来电", "Calls"),
    "verdict": ("效果", "Effect"),
    "act_now": ("派发主动工单", "Send a work order"),
    "avoided": ("避免来电", "Calls avoided"),
    "plan": ("下周排班与承办能力", "Next week: staffing and capacity"),
    "no_plan": ("尚无计划（每小时生成）", "No plan yet (made hourly)"),
    "agents": ("坐席", "Agents"),
    "short_days": ("能力不足的日子", "Days short of capacity"),
    "none_short": ("各单位能力充足", "Every department keeps up"),
    "no_chronic": ("本月暂无候选", "No candidate this month"),
    "emerging": ("新出现的问题", "Emerging issues"),
    "map": ("各区在办工单与热点", "Open tickets and hotspots by district"),
    "unplaced": ("另有 {n} 件在办工单未定位到区", "{n} more open tickets have no district"),
    "month": ("月份", "Month"),
    "all_tickets": ("全部工单", "All tickets"),
    "results": ("条结果", "results"),
    "no_results": ("没有符合条件的工单", "No ticket matches"),
    "searched_all": ("已查遍所选时间内的全部工单", "every ticket of the dates searched"),
    "searched_newest": (
        "只查了最新的 {n} 件：请缩小日期范围",
        "only the newest {n} tickets searched: narrow the dates",
    ),
    "newest_shown": ("只显示最新的 {n} 件：请加关键词或条件", "the newest {n} shown: add words or filters"),
    "minutes": ("分钟", "min"),
    "hours": ("小时", "h"),
    "days": ("天", "d"),
    "ago": ("前", "ago"),
    "unknown": ("未知", "unknown"),
    "live": ("实时", "Live"),
    "language": ("English", "中文"),
    "supervision": ("督办工单", "Under supervision"),
    "dispatched": ("已派单", "Dispatched"),
    "accepted": ("已签收", "Accepted"),
    "resolved": ("已办结", "Resolved"),
    "closed": ("已关闭", "Closed"),
    "duplicate": ("重复件", "Duplicate"),
    "coordinator": ("待协调", "With the coordinator"),
    "classified": ("已分类", "Classified"),
    "emergency": ("紧急", "Emergency"),
    "utilities": ("水电气热", "Utilities"),
    "general": ("一般", "General"),
    "complex": ("复杂", "Complex"),
}


# A ticket's history entries by their `event` (written by each service in English); others show as written.
EVENTS: dict[str, tuple[str, str]] = {
    "received": ("受理", "Received"),
    "classified": ("分类", "Classified"),
    "dispatched": ("派单", "Dispatched"),
    "duplicate": ("判为重复件", "Marked a duplicate"),
    "repeated": ("市民再次反映", "Reported again"),
    "accept": ("签收", "Accepted"),
    "reject": ("退单", "Rejected"),
    "rejected": ("退单后重新派单", "Dispatched again after a rejection"),
    "resolve": ("办结", "Resolved"),
    "note": ("备注", "Note"),
    "comment": ("市民补充", "Citizen's comment"),
    "citizen_comment": ("市民补充", "Citizen's comment"),
    "department_accept": ("承办单位签收", "Department accepts"),
    "department_reject": ("承办单位退单", "Department rejects"),
    "department_resolve": ("承办单位办结", "Department resolves"),
    "department_note": ("承办单位备注", "Department's note"),
    "category_corrected": ("改分类", "Category corrected"),
    "category_confirmed": ("确认分类", "Category confirmed"),
    "reroute_requested": ("申请改派", "Re-routing asked"),
    "rerouted": ("改派", "Re-routed"),
    "urgency_raised": ("紧急程度上调", "Urgency raised"),
    "urgency_doubted": ("疑似误报", "Possible false alarm"),
    "hazard_refiled": ("按险情改分类", "Filed by its hazard"),
    "reopened": ("重办", "Reopened"),
    "escalated": ("超时升级", "Escalated (deadline passed)"),
    "linked": ("并入问题", "Linked to a problem"),
    "survey_scheduled": ("安排回访", "Survey scheduled"),
    "survey_sent": ("回访已发送", "Survey sent"),
    "survey_unsent": ("回访未发送（无短信网关）", "Survey not sent (no gateway)"),
    "survey_undelivered": ("回访发送失败", "Survey undelivered"),
    "survey_answered": ("回访已答复", "Survey answered"),
    "survey_expired": ("回访未答复", "Survey unanswered"),
}


# How a ticket came in (shared.events.Channel); a channel not named here shows as itself.
CHANNELS: dict[str, tuple[str, str]] = {
    "telephony": ("电话", "Phone"),
    "twilio": ("电话", "Phone"),
    "open311": ("Open311 接口", "Open311"),
    "web": ("网站", "Web form"),
    "app": ("手机应用", "App"),
    "proactive": ("主动发现", "Found proactively"),
}


# Hazard kinds the urgency reviewer recognises (services/classifier/data/hazards.yaml; a test checks they
# match); another shows as itself.
HAZARDS: dict[str, tuple[str, str]] = {
    "gas": ("燃气泄漏", "gas leak"),
    "fire": ("火情", "fire"),
    "explosion": ("爆炸", "explosion"),
    "co": ("一氧化碳中毒", "carbon monoxide"),
    "burst_main": ("爆管", "burst main"),
    "live_wire": ("漏电/电线", "live wire"),
    "collapse": ("坍塌", "collapse"),
    "falling": ("高空坠物", "falling object"),
    "trapped": ("被困", "people trapped"),
    "flood_people": ("洪水围困", "people in flood water"),
    "child_water": ("落水", "someone in the water"),
    "chemical": ("化学品", "chemical"),
    "medical": ("急病/受伤", "medical"),
    "crash": ("交通事故", "crash"),
    "violence": ("暴力", "violence"),
}


def _named(table: dict[str, tuple[str, str]], lang: Lang, key: str | None) -> str:
    zh, en = table.get(key or "", (key or "-", key or "-"))
    return en if lang == "en" else zh


def channel_name(lang: Lang, channel: str | None) -> str:
    return _named(CHANNELS, lang, channel)


def event_name(lang: Lang, event: str) -> str:
    return _named(EVENTS, lang, event)


def hazard_name(lang: Lang, kind: str) -> str:
    return _named(HAZARDS, lang, kind)


def translate(lang: Lang, key: str, **values: object) -> str:
    zh, en = WORDS.get(key, (key, key))
    text = en if lang == "en" else zh
    return text.format(**values) if values else text


def pick(lang: Lang, bilingual: str) -> str:
    """One side of a "中文 / English" name (how the taxonomy and routing table name things)."""
    if " / " not in bilingual:
        return bilingual
    zh, en = bilingual.split(" / ", 1)
    return en.strip() if lang == "en" else zh.strip()
