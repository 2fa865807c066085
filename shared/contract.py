"""The data contract: every ticket field and every Redis key, each with its type and its owner.

The events are one contract (`shared.events`); what the services leave in Redis is the other. Both are
declared once: `TicketStore.apply` refuses a write of a ticket field, or a command on a key, that the
writer's scope (its consumer group) does not own, so a new field or key is declared here first.
`hotline contract` renders this module as docs/data-contract.md; the PostgreSQL system of record takes
its `tickets` columns from `TICKET_FIELDS` (`FieldType.sql`).

Scopes are the writers `TicketStore.apply` knows: the consumer groups of `shared.streams`, plus the
writers outside a worker (intake's scripts, intake's operator routes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from shared import streams

INTAKE = "intake"
OPERATOR = "intake-operator"
CLASSIFIER = streams.CLASSIFIER
DISPATCH = streams.DISPATCH
EVALUATION = streams.EVALUATION
INSIGHT = streams.INSIGHT
RECORDER = streams.RECORDER
# The web console writes only its own keys (sessions, sign-in failures), never a ticket field.
CONSOLE = "console"
# Every writer: the ticket's history list and its applied set are written by each through the store.
ANY = "*"

SCOPES: tuple[str, ...] = (INTAKE, OPERATOR, CLASSIFIER, DISPATCH, EVALUATION, INSIGHT, CONSOLE, RECORDER)


class FieldType(StrEnum):
    """A field's type as the hash holds it (always a string there) and as a column takes it."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"  # "1" / "0"
    DATETIME = "datetime"  # ISO 8601 with its offset
    JSON = "json"
    STATUS = "status"  # one of shared.status.Status

    @property
    def sql(self) -> str:
        return _SQL[self]


_SQL = {
    FieldType.STR: "text",
    FieldType.INT: "bigint",
    FieldType.FLOAT: "double precision",
    FieldType.BOOL: "boolean",
    FieldType.DATETIME: "timestamptz",
    FieldType.JSON: "jsonb",
    FieldType.STATUS: "text",
}


@dataclass(frozen=True)
class TicketField:
    name: str
    type: FieldType
    owner: str
    description: str
    # Other scopes that write it too (a copy kept beside their own fields, an operator's correction).
    also: tuple[str, ...] = ()

    @property
    def writers(self) -> frozenset[str]:
        return frozenset((self.owner, *self.also))


class KeyType(StrEnum):
    HASH = "hash"
    ZSET = "sorted set"
    SET = "set"
    LIST = "list"
    STRING = "string"
    STREAM = "stream"


@dataclass(frozen=True)
class RedisKey:
    """A key, or a family of keys: `{name}` in the pattern stands for one segment of the name."""

    pattern: str
    type: KeyType
    owner: str
    description: str
    ttl: str = "none"
    also: tuple[str, ...] = ()

    @property
    def writers(self) -> frozenset[str]:
        return frozenset((self.owner, *self.also))


TEXT, INT, FLOAT, BOOL, TIME, JSON = (
    FieldType.STR,
    FieldType.INT,
    FieldType.FLOAT,
    FieldType.BOOL,
    FieldType.DATETIME,
    FieldType.JSON,
)

TICKET_FIELDS: tuple[TicketField, ...] = (
    # -- intake: the report as it came in ------------------------------------------------------------
    TicketField("status", FieldType.STATUS, DISPATCH, "where the ticket is (shared.status)", also=(INTAKE,)),
    TicketField("channel", TEXT, INTAKE, "the channel it came through (hotline, web, wechat, open311...)"),
    TicketField("text", TEXT, INTAKE, "the citizen's words, caller numbers removed"),
    TicketField("title", TEXT, INTAKE, "a title, when the channel has one"),
    TicketField("language", TEXT, INTAKE, "the language the channel declared"),
    TicketField(
        "caller_hash", TEXT, INTAKE, "a keyed hash of the caller's number: repeat callers, no number"
    ),
    TicketField("caller_masked", TEXT, INTAKE, "the caller's number with all but its last digits masked"),
    TicketField("contacts", JSON, INTAKE, "numbers given in the text (masked there), hashed, for a callback"),
    TicketField("service_code", TEXT, INTAKE, "the category the citizen chose (Open311 service_code)"),
    TicketField("media_url", TEXT, INTAKE, "the citizen's photo"),
    TicketField(
        "request_fingerprint", TEXT, INTAKE, "a hash of what an Open311 client sent: a reused key told apart"
    ),
    TicketField("ivr_choice", TEXT, INTAKE, "the IVR menu digit the caller pressed"),
    TicketField("handle_seconds", FLOAT, INTAKE, "the call's handling time (started_at to ended_at)"),
    TicketField("attributes", JSON, INTAKE, "Open311 attributes the client sent"),
    TicketField("lat", FLOAT, INTAKE, "latitude the citizen gave"),
    TicketField("lon", FLOAT, INTAKE, "longitude the citizen gave"),
    TicketField("address", TEXT, INTAKE, "the address the citizen gave"),
    TicketField("received_at", TIME, INTAKE, "when the hotline received it", also=(DISPATCH,)),
    TicketField(
        "rev", INT, INTAKE, "the ticket's revision: every script that changes it adds 1", also=(ANY,)
    ),
    TicketField("updated_at", TIME, INTAKE, "the last change anyone made", also=(OPERATOR, DISPATCH)),
    # -- classifier ----------------------------------------------------------------------------------
    TicketField("category", TEXT, CLASSIFIER, "the category (taxonomy code)", also=(OPERATOR, DISPATCH)),
    TicketField("confidence", FLOAT, CLASSIFIER, "the model's probability of its category"),
    TicketField(
        "category_source",
        TEXT,
        CLASSIFIER,
        "model, citizen, operator, or hazard (the urgency reviewer's, for the hazard it recognised)",
        also=(OPERATOR,),
    ),
    TicketField("model_version", TEXT, CLASSIFIER, "the model that classified it"),
    TicketField("needs_review", BOOL, CLASSIFIER, "below the confidence an operator reviews from"),
    TicketField("alternatives", JSON, CLASSIFIER, "the top 3 categories with their confidences"),
    TicketField("urgency", TEXT, CLASSIFIER, "emergency, urgent or general", also=(DISPATCH,)),
    TicketField("urgency_cue", TEXT, CLASSIFIER, "the words that made it urgent"),
    TicketField(
        "urgency_doubt", TEXT, CLASSIFIER, "why the urgency reviewer thinks an emergency may be a false alarm"
    ),
    TicketField("district", TEXT, CLASSIFIER, "the district found in the text or location", also=(DISPATCH,)),
    TicketField("street", TEXT, CLASSIFIER, "the street (街道) found"),
    TicketField("place_source", TEXT, CLASSIFIER, "where the place came from (text, location...)"),
    TicketField("classified_at", TIME, CLASSIFIER, "when it was classified"),
    TicketField("dup_sig", TEXT, CLASSIFIER, "the text signature repeats are compared with"),
    # -- dispatch: the single writer of status and department -----------------------------------------
    TicketField("department", TEXT, DISPATCH, "the department that has it now"),
    TicketField("dispatch_reason", TEXT, DISPATCH, "why that department"),
    TicketField("dispatched_at", TIME, DISPATCH, "the latest dispatch"),
    TicketField("dispatch_due_at", TIME, DISPATCH, "when the department must sign for it (签收)"),
    TicketField("feedback_due_at", TIME, DISPATCH, "when the department must answer (反馈)"),
    TicketField("attempt", INT, DISPATCH, "how many times it was dispatched"),
    TicketField("accepted_at", TIME, DISPATCH, "when the department signed for it"),
    TicketField("resolved_at", TIME, DISPATCH, "when the department resolved it"),
    TicketField("rejections", INT, DISPATCH, "how many departments rejected it"),
    TicketField("rejected_by", TEXT, DISPATCH, "the departments that rejected it, comma-separated"),
    TicketField("last_rejection", TEXT, DISPATCH, "the last rejecting department's note"),
    TicketField("reopen_count", INT, DISPATCH, "how many times a citizen reopened it"),
    TicketField("reopened_at", TIME, DISPATCH, "the last reopening"),
    TicketField("rerouted_by", TEXT, DISPATCH, "the operator who last re-routed it"),
    TicketField("duplicate_of", TEXT, DISPATCH, "the ticket this one repeats"),
    TicketField("repeat_count", INT, DISPATCH, "how many later reports repeat this one"),
    TicketField("citizen_comment", TEXT, DISPATCH, "the citizen's last comment"),
    TicketField("citizen_status", TEXT, DISPATCH, "the state the citizen's app gave with it"),
    TicketField("citizen_media_url", TEXT, DISPATCH, "the photo with the citizen's comment"),
    TicketField("citizen_comment_at", TIME, DISPATCH, "when the citizen commented"),
    TicketField("escalated_dispatch_at", TIME, DISPATCH, "when its signing deadline was escalated"),
    TicketField("escalated_feedback_at", TIME, DISPATCH, "when its answer deadline was escalated"),
    # -- evaluation: its own copy of the dispatch it counts, the surveys -------------------------------
    TicketField("evaluation_tracked_at", TIME, EVALUATION, "when evaluation counted its dispatch"),
    TicketField("eval_department", TEXT, EVALUATION, "the department of the dispatch counted"),
    TicketField("eval_category", TEXT, EVALUATION, "the category of the dispatch counted"),
    TicketField("eval_district", TEXT, EVALUATION, "the district of the dispatch counted"),
    TicketField("eval_dispatched_at", TIME, EVALUATION, "the dispatch counted"),
    TicketField("eval_dispatch_due_at", TIME, EVALUATION, "its signing deadline"),
    TicketField("eval_responded_for", TEXT, EVALUATION, "the dispatched_at (as written) answered"),
    TicketField("eval_responded_at", TIME, EVALUATION, "when the department responded"),
    TicketField("eval_responded_in_time", BOOL, EVALUATION, "responded by the deadline"),
    TicketField("eval_resolved_at", TIME, EVALUATION, "the resolution the survey asks about"),
    TicketField("eval_survey_round", INT, EVALUATION, "the survey's round: 1, then one more per reopening"),
    TicketField("eval_survey_status", TEXT, EVALUATION, "scheduled, answered or expired"),
    TicketField("eval_survey_department", TEXT, EVALUATION, "the department the survey judges"),
    TicketField("eval_survey_district", TEXT, EVALUATION, "its district"),
    TicketField("eval_survey_category", TEXT, EVALUATION, "its category"),
    TicketField("eval_survey_delivery", TEXT, EVALUATION, "sent, unsent or undelivered"),
    TicketField("eval_survey_sent_at", TIME, EVALUATION, "when the survey went out"),
    TicketField("eval_survey_answer_by", TIME, EVALUATION, "the end of the answer window"),
    TicketField("eval_answered_at", TIME, EVALUATION, "when the citizen answered"),
    TicketField("eval_rounds", JSON, EVALUATION, "every answered round (shared.events.SurveyRound)"),
    TicketField("eval_reopen_count", INT, EVALUATION, "reopenings the surveys caused"),
    TicketField("eval_supervision", BOOL, EVALUATION, "reopened often enough for 督办"),
    # -- insight: problems (a supervisor's proactive work order links the open members) ------------------
    TicketField("problem_id", TEXT, INSIGHT, "the problem this ticket is worked as part of"),
    TicketField("proactive_ticket_id", TEXT, INSIGHT, "the proactive work order of that problem"),
)

FIELDS: dict[str, TicketField] = {f.name: f for f in TICKET_FIELDS}

P = "hotline"
HASH, ZSET, SET, LIST, STRING, STREAM = (
    KeyType.HASH,
    KeyType.ZSET,
    KeyType.SET,
    KeyType.LIST,
    KeyType.STRING,
    KeyType.STREAM,
)

REDIS_KEYS: tuple[RedisKey, ...] = (
    # -- the ticket store (shared/store.py) -----------------------------------------------------------
    RedisKey(
        f"{P}:ticket:{{ticket_id}}", HASH, INTAKE, "the ticket: TICKET_FIELDS, each by its owner", also=(ANY,)
    ),
    RedisKey(
        f"{P}:ticket:{{ticket_id}}:history", LIST, INTAKE, "the ticket's history, append-only", also=(ANY,)
    ),
    RedisKey(
        f"{P}:ticket:{{ticket_id}}:applied", SET, INTAKE, "scope:event_id of each write applied", also=(ANY,)
    ),
    RedisKey(f"{P}:tickets:by_created", ZSET, INTAKE, "ticket ids by receipt time"),
    RedisKey(
        f"{P}:recorder:unrecorded",
        ZSET,
        INTAKE,
        "tickets changed since the recorder wrote them, by first change; the recorder takes them off",
        also=(ANY, RECORDER),
    ),
    RedisKey(
        f"{P}:recorder:evicted",
        STRING,
        RECORDER,
        "how many tickets the retention ever removed; while absent, no store asks PostgreSQL for a ticket",
    ),
    RedisKey(
        f"{P}:updates:{{hour}}",
        SET,
        INTAKE,
        "ids of tickets whose status changed that hour",
        "90 days",
        (ANY,),
    ),
    # -- intake ---------------------------------------------------------------------------------------
    RedisKey(
        f"{P}:dedupe:{{scope}}:{{key}}", STRING, INTAKE, "a source or delivery id seen: the ticket", "7 days"
    ),
    RedisKey(f"{P}:rate:{{kind}}:{{source}}", STRING, INTAKE, "a fixed-window request counter", "the window"),
    RedisKey(
        f"{P}:authfail:{{client}}",
        STRING,
        INTAKE,
        "a client's failed authentications (429 past the limit)",
        "the failure window",
    ),
    RedisKey(f"{P}:labels", STREAM, OPERATOR, "operators' category corrections: the classifier's labels"),
    # -- classifier -----------------------------------------------------------------------------------
    RedisKey(
        f"{P}:dupes:{{district}}:{{category}}",
        ZSET,
        CLASSIFIER,
        "recent tickets repeats are sought among",
        "the repeat window + 1 hour",
    ),
    RedisKey(
        f"{P}:review",
        ZSET,
        CLASSIFIER,
        "tickets below the review threshold by receipt; an operator's answer (confirm, correct, re-route)"
        " takes one off, and so do closing it (dispatch) and its leaving Redis (the recorder's retention)",
        also=(OPERATOR, DISPATCH, RECORDER),
    ),
    # -- dispatch -------------------------------------------------------------------------------------
    RedisKey(
        f"{P}:dept:{{department}}:open",
        ZSET,
        DISPATCH,
        "a department's open tickets by receipt (intake lists it)",
    ),
    RedisKey(
        f"{P}:dispatch:queue:{{department}}", ZSET, DISPATCH, "a department's tickets by answer deadline"
    ),
    RedisKey(f"{P}:sla:dispatch_due", ZSET, DISPATCH, "signing deadlines still running"),
    RedisKey(f"{P}:sla:feedback_due", ZSET, DISPATCH, "answer deadlines still running"),
    RedisKey(f"{P}:dispatch:acceptance", HASH, DISPATCH, "accepted/rejected counts the router learns from"),
    RedisKey(f"{P}:dispatch:coordinator", ZSET, DISPATCH, "tickets with the coordinator"),
    RedisKey(f"{P}:dispatch:outbound:jobs", HASH, DISPATCH, "webhooks to departments' systems, by event id"),
    RedisKey(f"{P}:dispatch:outbound:due", ZSET, DISPATCH, "when each webhook is (re)tried"),
    RedisKey(f"{P}:dispatch:outbound:sent:{{event_id}}", STRING, DISPATCH, "a webhook delivered", "7 days"),
    # -- evaluation -----------------------------------------------------------------------------------
    RedisKey(f"{P}:counters:{{name}}", HASH, EVALUATION, "dispatches counted by department, by category"),
    RedisKey(
        f"{P}:rates:{{window}}:{{bucket}}", HASH, EVALUATION, "the 三率 counters of a day, week or month"
    ),
    RedisKey(f"{P}:surveys:due", ZSET, EVALUATION, "surveys to send, by due time"),
    RedisKey(f"{P}:surveys:open", ZSET, EVALUATION, "surveys sent, by end of the answer window"),
    RedisKey(f"{P}:supervision", ZSET, EVALUATION, "tickets under 督办"),
    RedisKey(
        f"{P}:survey:{{ticket_id}}:{{round}}:outcome",
        STRING,
        EVALUATION,
        "answered or expired, whichever came first (intake claims it for an answer)",
        "400 days",
        (INTAKE,),
    ),
    # -- insight --------------------------------------------------------------------------------------
    RedisKey(f"{P}:insight:hourly:{{day}}", HASH, INSIGHT, "tickets per series and hour", "40 days"),
    RedisKey(f"{P}:insight:daily:{{month}}", HASH, INSIGHT, "tickets per series and day", "800 days"),
    RedisKey(f"{P}:insight:recent:{{series}}", LIST, INSIGHT, "a series' latest ticket ids", "3 days"),
    RedisKey(f"{P}:insight:episodes", HASH, INSIGHT, "each series' surge episode"),
    RedisKey(f"{P}:insight:plan", STRING, INSIGHT, "the week's staffing plan (JSON), made hourly"),
    RedisKey(f"{P}:problems", HASH, INSIGHT, "problem id -> the problem (JSON)"),
    RedisKey(f"{P}:problems:pending", HASH, INSIGHT, "place-and-topic key -> tickets not yet a problem"),
    RedisKey(
        f"{P}:problems:version",
        STRING,
        INSIGHT,
        "commits to the two above (the last committer's copy is whole)",
    ),
    RedisKey(
        f"{P}:problems:actions",
        HASH,
        INSIGHT,
        "problem id -> a supervisor's action, applied by insight's next pass",
        also=(INTAKE,),
    ),
    RedisKey(f"{P}:insight:emerging", STRING, INSIGHT, "emerging issues (JSON)"),
    RedisKey(f"{P}:insight:forecast", STRING, INSIGHT, "the volume forecast (JSON)"),
    RedisKey(
        f"{P}:insight:background-lease",
        STRING,
        INSIGHT,
        "which replica runs the background jobs",
        "the lease",
    ),
    RedisKey(
        f"{P}:insight:chronic:{{month}}",
        STRING,
        INSIGHT,
        "the month's 每月一题 candidates (the report reads it)",
    ),
    # -- console --------------------------------------------------------------------------------------
    RedisKey(
        f"{P}:console:session:{{session_id}}", HASH, CONSOLE, "a signed-in session", "the session's life"
    ),
    RedisKey(
        f"{P}:console:login-failures:{{who}}",
        STRING,
        CONSOLE,
        "failed sign-ins of a user name or client",
        "the throttle's window",
    ),
)

TICKET = REDIS_KEYS[0]


def _regex(pattern: str) -> re.Pattern[str]:
    # A name's last part may hold anything (a series, a client's key); the ones before it are single
    # segments, so `{ticket_id}:history` is not read as a longer ticket id.
    parts = re.split(r"(\{\w+\})", pattern)
    last = max(i for i, p in enumerate(parts) if p.startswith("{")) if "{" in pattern else -1
    return re.compile(
        "".join(
            (".+" if i == last else "[^:]+") if p.startswith("{") else re.escape(p)
            for i, p in enumerate(parts)
        )
    )


# The most literal first: `hotline:ticket:{id}:history` before `hotline:ticket:{id}`.
_KEY_PATTERNS = sorted(
    ((_regex(k.pattern), k) for k in REDIS_KEYS),
    key=lambda rk: -len(re.sub(r"\{\w+\}", "", rk[1].pattern)),
)


@lru_cache(maxsize=4096)
def key_of(name: str) -> RedisKey | None:
    """The declaration `name` falls under (None: undeclared)."""
    for regex, declared in _KEY_PATTERNS:
        if regex.fullmatch(name):
            return declared
    return None


class UndeclaredWriteError(PermissionError):
    """A write the contract does not give the writer: the message says what to declare, and where."""


# The fields each scope may write: the check of a write that is allowed is one subset test.
_WRITABLE: dict[str, frozenset[str]] = {
    scope: frozenset(f.name for f in TICKET_FIELDS if scope == f.owner or scope in f.also) for scope in SCOPES
}


def check_fields(scope: str, names: Iterable[str]) -> None:
    """Refuse a write of ticket fields `scope` does not own (nor is listed as also writing)."""
    if _WRITABLE.get(scope, frozenset()).issuperset(names):
        return
    for name in names:
        declared = FIELDS.get(name)
        if declared is None:
            raise UndeclaredWriteError(
                f"{scope} writes ticket field {name!r}, which shared/contract.py does not declare: add "
                f'TicketField("{name}", FieldType.<STR|INT|FLOAT|BOOL|DATETIME|JSON>, "{scope}", '
                '"<what it holds>") to TICKET_FIELDS'
            )
        if scope != declared.owner and scope not in declared.also:
            raise UndeclaredWriteError(
                f"{scope} writes ticket field {name!r}, which {declared.owner} owns: read it from "
                f"{declared.owner}, or add {scope!r} to its `also` in shared/contract.py"
            )


def check_key(scope: str, name: str) -> RedisKey:
    """The declaration of key `name`; refused when `scope` does not own it."""
    declared = key_of(name)
    if declared is None:
        raise UndeclaredWriteError(
            f"{scope} writes Redis key {name!r}, which shared/contract.py does not declare: add "
            f'RedisKey("hotline:...{{part}}...", KeyType.<HASH|ZSET|SET|LIST|STRING|STREAM>, "{scope}", '
            '"<what it holds>", ttl="<how long it lives>") to REDIS_KEYS'
        )
    if scope != declared.owner and scope not in declared.also and ANY not in declared.also:
        raise UndeclaredWriteError(
            f"{scope} writes Redis key {name!r} ({declared.pattern}), which {declared.owner} owns: add "
            f"{scope!r} to its `also` in shared/contract.py, or leave the write to {declared.owner}"
        )
    return declared
