"""Open311 GeoReport v2 under /open311/v2/, so existing 311 web and mobile apps work unchanged.

XML by default (`services`, `services.xml`), JSON on `.json`; errors are the spec's `{code, description}`
arrays with 400 (anything malformed, schema errors included), 403 (api_key) and 404. Services come from
the taxonomy; a request's status, agency and expected time come from the ticket store, so an app sees
the ticket move. Only POST needs an api_key. What a request exposes is limited on purpose: descriptions
only of reports that came in through Open311 (a phone transcript is not published), with digit runs that
could be a phone number blanked, and never contact data.

`servicerequestupdates` is FixMyStreet's extension (its `Open311.pm` polls it with the last two hours):
each change of a ticket's status, in FixMyStreet's status words, described for the public (the agency,
and the department's own note on accepting or resolving; never routing internals, and digit runs that
could be a phone number are blanked). One jurisdiction: `jurisdiction_id` is accepted and ignored.
A POST to it is the citizen's side (its client's `post_service_request_update`): a comment with the
state their app shows, put on the ticket's history and sent to the department; that state is recorded,
never applied (dispatch alone moves a ticket; "not fixed" after a resolution is heard through the survey).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree as ET

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import QueryParams
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.intake.deps import Deps
from services.intake.history import merged_updates
from services.intake.http import (
    HttpError,
    available,
    client_ip,
    instrumented,
    media_type,
    parse_form,
    read_body,
    require_content_type,
)
from services.intake.openapi import Operation, Param
from services.intake.public_place import public_place
from services.intake.writes import DEDUPE_TTL_SECONDS
from shared import streams
from shared.bus import as_str
from shared.events import Location, TicketUpdated, utcnow
from shared.ids import derive_id
from shared.pii import MaskedText
from shared.status import CLOSED, Status
from shared.store import Ticket, Update, keys
from shared.taxonomy import Attribute, Category

M = TypeVar("M", bound=BaseModel)
BASE = "/open311/v2"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
SPEC = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-01-01T00:00:00Z"
DEFAULT_DAYS = 90
MAX_REQUESTS = 1000
MAX_IDS = 200
UPDATES_DEFAULT = timedelta(hours=24)
MAX_UPDATES = 1000

# Our statuses in FixMyStreet's words (its Open311.pm map_state): dispatched is still "open" (a department
# has it, nobody has signed for it); the coordinator finding an owner is "investigating".
FMS_STATUS: dict[str, str] = {
    Status.RECEIVED: "open",
    Status.DISPATCHED: "open",
    Status.COORDINATOR: "investigating",
    Status.ACCEPTED: "in_progress",
    Status.RESOLVED: "fixed",
    Status.DUPLICATE: "duplicate",
}
# A day's margin: a start computed back from an end in the first days of year 1 stays a datetime.
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
# What XML 1.0 cannot carry even escaped (most C0 controls, lone surrogates, U+FFFE/U+FFFF): one such
# character in a report would make every XML listing that shows it unreadable.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Seven or more digits, allowing the separators people type in phone numbers; a date (2026-11-28) is not one.
_NUMBER = re.compile(r"(?<!\d)(?!\d{4}[-/.]\d\d?[-/.]\d\d?(?!\d))[+(]?\d(?:[\s\-().]*\d){6,}")


# Whitespace, controls and the characters browsers refuse in URLs: a link with them is not a plain address.
_NOT_URL = re.compile(r"[\s\x00-\x1f\x7f<>\"\\^`{|}]")


class _Format(Convertor[str]):
    """`services`, `services.xml` or `services.json`: clients append the extension to a base URL."""

    regex = r"(?:\.(?:xml|json))?"

    def convert(self, value: str) -> str:
        return "json" if value == ".json" else "xml"

    def to_string(self, value: str) -> str:
        return f".{value}"


class _Segment(Convertor[str]):
    regex = r"[^/.]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("open311_fmt", _Format())
register_url_convertor("open311_id", _Segment())


def web_address(value: str) -> str:
    """A media_url is shown to departments and published: only an absolute http(s) address, so a
    `javascript:`, `file:` or `data:` URL never reaches a page or a department's system."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        web = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an invalid IPv6 literal or port
        web = False
    if not web or _NOT_URL.search(value):
        raise ValueError("media_url must be an absolute http or https URL")
    return value


WebAddress = Annotated[str, AfterValidator(web_address)]


class ServiceRequestForm(BaseModel):
    """POST requests: form fields. `attribute[CODE]=V` (or `attribute[CODE][]=V`, repeated) answer the
    service's questions. Contact fields are accepted and not kept, except `phone`, kept as a keyed hash."""

    model_config = ConfigDict(extra="ignore")

    api_key: str = Field(min_length=1, max_length=200)
    jurisdiction_id: str | None = Field(default=None, max_length=100)
    service_code: str = Field(min_length=1, max_length=64)
    lat: float | None = Field(default=None, ge=-90, le=90)
    long: float | None = Field(default=None, ge=-180, le=180)
    address_string: str | None = Field(default=None, max_length=500)
    address_id: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=254)
    device_id: str | None = Field(default=None, max_length=200)
    account_id: str | None = Field(default=None, max_length=200)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    description: str | None = Field(default=None, max_length=4000)
    media_url: WebAddress | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _located(self) -> ServiceRequestForm:
        if (self.lat is None) != (self.long is None):
            raise ValueError("lat and long go together")
        if self.lat is None and not self.address_string and not self.address_id:
            raise ValueError("a location is required: lat and long, address_string or address_id")
        return self


# The states FixMyStreet's client may send with an update (mySociety's Open311 extension), in any case.
CITIZEN_STATUSES = (
    "open",
    "closed",
    "fixed",
    "in_progress",
    "planned",
    "action_scheduled",
    "investigating",
    "duplicate",
    "not_councils_responsibility",
    "no_further_action",
    "internal_referral",
    "reopen",
    "for_triage",
)


class UpdateForm(BaseModel):
    """POST servicerequestupdates (FixMyStreet's extension): a citizen's comment on their request, with
    the state their app shows. Contact fields (email, first_name, last_name) are accepted and not kept."""

    model_config = ConfigDict(extra="ignore")

    api_key: str = Field(min_length=1, max_length=200)
    jurisdiction_id: str | None = Field(default=None, max_length=100)
    service_request_id: str = Field(min_length=1, max_length=64)
    update_id: str = Field(
        min_length=1,
        max_length=200,
        # Older FixMyStreet releases send their comment's id as update_id_ext.
        validation_alias=AliasChoices("update_id", "update_id_ext"),
        description="the client's own id of the update",
    )
    status: str = Field(description=f"one of {', '.join(CITIZEN_STATUSES)} (any case)")
    description: MaskedText | None = Field(default=None, max_length=4000)
    updated_datetime: datetime | None = None
    media_url: WebAddress | None = Field(default=None, max_length=2000)
    email: str | None = Field(default=None, max_length=254)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: str) -> str:
        if value.strip().lower() not in CITIZEN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(CITIZEN_STATUSES)}")
        return value.strip().lower()


class UpdateCreated(BaseModel):
    update_id: str


class ServiceRequest(BaseModel):
    """One request as GET requests returns it."""

    service_request_id: str
    status: str
    status_notes: str | None = None
    service_name: str | None = None
    service_code: str | None = None
    description: str | None = None
    agency_responsible: str | None = None
    service_notice: str | None = None
    requested_datetime: str | None = None
    updated_datetime: str | None = None
    expected_datetime: str | None = None
    address: str | None = None
    address_id: str | None = None
    zipcode: str | None = None
    lat: float | None = None
    long: float | None = None
    media_url: str | None = None


class Created(BaseModel):
    service_request_id: str
    service_notice: str | None = None
    account_id: str | None = None


class RequestUpdate(BaseModel):
    """One status change, as FixMyStreet's `servicerequestupdates` extension reads it."""

    update_id: str
    service_request_id: str
    status: str
    updated_datetime: str
    description: str
    media_url: str = ""


class Service(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str
    keywords: str
    group: str | None


# Each list's element name in XML (the spec's <services><service>, <values><value>...).
_ITEMS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "service_request_updates": "request_update",
    "endpoints": "endpoint",
    "formats": "format",
    "attributes": "attribute",
    "values": "value",
}


def _xml(name: str, value: Any, parent: ET.Element | None = None) -> ET.Element:
    element = ET.Element(name) if parent is None else ET.SubElement(parent, name)
    if isinstance(value, list):
        for item in value:
            _xml(_ITEMS.get(name, "item"), item, element)
    elif isinstance(value, dict):
        for key, item in value.items():
            _xml(key, item, element)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = _NOT_XML.sub("", str(value))
    return element


def render(fmt: str, root: str, data: Any, status: int = 200) -> Response:
    if fmt == "json":
        return JSONResponse(data, status_code=status)
    body = '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(_xml(root, data), encoding="unicode")
    return Response(body, status_code=status, media_type="text/xml; charset=utf-8")


def render_error(request: Request, error: HttpError) -> Response:
    """Open311 errors: 422 (schema) becomes the spec's 400; the description names the fields. A reused
    Idempotency-Key stays 422, as the IETF idempotency-key draft answers it."""
    status = 400 if error.status == 422 and error.code == "invalid_payload" else error.status
    description = error.message
    if error.fields:
        description += ": " + "; ".join(f"{f['field']}: {f['problem']}" for f in error.fields)
    response = render(_format_of(request), "errors", [{"code": status, "description": description}], status)
    response.headers.update(error.headers or {})
    return response


async def form_of(request: Request, limit: int) -> list[tuple[str, str]]:
    """A POST's form fields, urlencoded or multipart (FixMyStreet sends multipart when there are photos)."""
    require_content_type(request, FORM, MULTIPART)
    body = await read_body(request, limit)
    if media_type(request) == MULTIPART:
        return await _multipart(request, body)
    return parse_form(body)


async def _multipart(request: Request, body: bytes) -> list[tuple[str, str]]:
    """A multipart/form-data body (already read within the size limit) as its text fields, in order.
    Uploaded files are read and dropped: intake keeps no blobs, a photo is published by its media_url."""

    async def chunks() -> AsyncGenerator[bytes]:
        yield body

    try:
        form = await MultiPartParser(request.headers, chunks(), max_files=50, max_fields=1000).parse()
    except MultiPartException as exc:
        raise HttpError(
            400, "bad_form", f"the body is not a readable multipart form: {exc.message}"
        ) from None
    try:
        return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
    finally:
        await form.close()


def _validated(model: type[M], fields: dict[str, str]) -> M:
    """The form as `model`, or the spec's 400 naming each field's problem."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        raise _bad(problems) from None


def _format_of(request: Request) -> str:
    """The format the client asked for, also on a URL no route matched (`requests/T1.JSON`)."""
    if fmt := request.path_params.get("fmt"):
        return str(fmt)
    return "json" if request.url.path.lower().endswith(".json") else "xml"


def _bad(description: str) -> HttpError:
    return HttpError(400, "bad_request", description)


def _attributes(category: Category, params: list[tuple[str, str]]) -> dict[str, list[str]]:
    """`attribute[CODE]` and `attribute[CODE][]` answers, checked against the service definition."""
    given: dict[str, list[str]] = {}
    for name, value in params:
        if name.startswith("attribute[") and value != "":
            code = name[len("attribute[") :].removesuffix("[]").removesuffix("]")
            given.setdefault(code, []).append(value)
    answers = {}
    for attribute in category.attributes:
        values = given.get(attribute.code, [])
        if not values:
            if attribute.required:
                raise _bad(f"attribute[{attribute.code}] is required: {attribute.description}")
            continue
        answers[attribute.code] = _checked(attribute, values)
    return answers


def _checked(attribute: Attribute, values: list[str]) -> list[str]:
    where = f"attribute[{attribute.code}]"
    if attribute.datatype == "singlevaluelist" and len(values) > 1:
        raise _bad(f"{where} takes one value")
    if attribute.datatype in ("singlevaluelist", "multivaluelist"):
        allowed = {v.key for v in attribute.values}
        if unknown := [v for v in values if v not in allowed]:
            raise _bad(f"{where}: unknown value(s) {unknown}; allowed: {sorted(allowed)}")
    if attribute.datatype == "number":
        try:
            finite = all(math.isfinite(float(v)) for v in values)  # float() takes "nan" and "inf"
        except ValueError:
            finite = False
        if not finite:
            raise _bad(f"{where} must be a number")
    if attribute.datatype == "datetime":
        try:
            [datetime.fromisoformat(v) for v in values]
        except ValueError:
            raise _bad(f"{where} must be an ISO 8601 datetime") from None
    return [v[:1000] for v in values[:50]]


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _unnumbered(text: str) -> str:
    return _NUMBER.sub("[number removed]", text)


def _public(text: str) -> str:
    return _unnumbered(text.strip())[:1000]


def _described(entry: dict[str, Any], agency: str) -> str:
    """What the public reads of a status change. Routing reasons and rejection notes are for the
    hotline's staff; a department's note on accepting or resolving is addressed to the citizen."""
    event, status, summary = entry.get("event"), entry["status"], str(entry.get("summary") or "")
    if status == Status.RECEIVED:
        return _public(f"Received {summary}")
    if status == Status.DUPLICATE:
        return _public(f"Duplicate {summary}")
    if status in (Status.DISPATCHED, Status.COORDINATOR):
        how = {"rejected": "Passed on", "reopened": "Reopened", "rerouted": "Transferred"}.get(
            str(event), "Sent"
        )
        return f"{how}: with {agency}"
    note = str(entry.get("note") or "")
    done = {Status.ACCEPTED: "Accepted", Status.RESOLVED: "Resolved"}.get(status, status.capitalize())
    return _public(f"{done} by {agency}" + (f": {note}" if note else ""))


JURISDICTION = Param(
    "jurisdiction_id", "query", "accepted and ignored: the endpoint serves one jurisdiction", False
)
DATES = (
    Param("start_date", "query", "ISO 8601", False, {"type": "string", "format": "date-time"}),
    Param("end_date", "query", "ISO 8601", False, {"type": "string", "format": "date-time"}),
)

OPERATIONS = [
    Operation(
        "get",
        f"{BASE}/discovery.json",
        "Open311 service discovery",
        "open311",
        params=(JURISDICTION,),
        open311=True,
    ),
    Operation(
        "get",
        f"{BASE}/services.json",
        "The service list (the taxonomy)",
        "open311",
        answer=Service,
        answer_is_list=True,
        params=(JURISDICTION,),
        open311=True,
    ),
    Operation(
        "get",
        f"{BASE}/services/{{service_code}}.json",
        "A service definition (its attributes)",
        "open311",
        params=(Param("service_code", "path", "a service code"), JURISDICTION),
        errors=(404,),
        open311=True,
    ),
    Operation(
        "post",
        f"{BASE}/requests.json",
        "Report a problem (needs api_key); urlencoded or multipart/form-data (files are not kept); an "
        "Idempotency-Key makes retries safe, and reused for another report is a 422",
        "open311",
        ok=201,
        body=ServiceRequestForm,
        media=FORM,
        answer=Created,
        answer_is_list=True,
        params=(Param("Idempotency-Key", "header", "the same key and form create once", False),),
        errors=(400, 403, 415, 422),
        open311=True,
    ),
    Operation(
        "get",
        f"{BASE}/requests.json",
        "Requests (last 90 days or 1000, newest first)",
        "open311",
        answer=ServiceRequest,
        answer_is_list=True,
        params=(
            Param("service_request_id", "query", "comma list; overrides the other filters", False),
            Param("service_code", "query", "comma list", False),
            *DATES,
            Param("status", "query", "open, closed or both", False),
            JURISDICTION,
        ),
        errors=(400,),
        open311=True,
    ),
    Operation(
        "get",
        f"{BASE}/requests/{{service_request_id}}.json",
        "One request",
        "open311",
        answer=ServiceRequest,
        answer_is_list=True,
        params=(Param("service_request_id", "path", "the ticket id"), JURISDICTION),
        errors=(404,),
        open311=True,
    ),
    Operation(
        "get",
        f"{BASE}/tokens/{{token}}.json",
        "The request id of a token",
        "open311",
        params=(Param("token", "path", "a token from POST requests"), JURISDICTION),
        errors=(404,),
        open311=True,
    ),
    Operation(
        "get",
        f"{BASE}/servicerequestupdates.json",
        "Status updates, oldest first, at most 1000 (the oldest; ask again from the last one's time); "
        "the window defaults to the last 24 hours (FixMyStreet's extension)",
        "open311",
        answer=RequestUpdate,
        answer_is_list=True,
        params=(
            *DATES,
            Param("service_request_id", "query", "comma list: only these requests", False),
            Param("api_key", "query", "accepted and not needed", False),
            JURISDICTION,
        ),
        errors=(400,),
        open311=True,
    ),
    Operation(
        "post",
        f"{BASE}/servicerequestupdates.json",
        "A citizen's update on their request (FixMyStreet's extension, needs api_key): on the ticket's "
        "history and to its department; the same update_id is stored once",
        "open311",
        body=UpdateForm,
        media=FORM,
        answer=UpdateCreated,
        answer_is_list=True,
        errors=(400, 403, 404, 415),
        open311=True,
    ),
]


def retry_window() -> int:
    """The number of the de-duplication window it is now: as long as intake keeps a delivery's marker."""
    return int(time.time()) // DEDUPE_TTL_SECONDS


def routes(deps: Deps) -> list[Route]:
    settings, taxonomy = deps.settings, deps.taxonomy
    base_url = settings.public_base_url.rstrip("/") + BASE

    def when(value: datetime | None) -> str | None:
        return value.astimezone(deps.zone).isoformat(timespec="seconds") if value else None

    def record(ticket: Ticket) -> dict[str, Any]:
        # The citizen's own choice is what they and their app know the request by, whatever the
        # classifier made of it for routing.
        code = ticket.service_code or ticket.category
        category = taxonomy.get(code) if code else None
        closed = ticket.status in CLOSED
        duplicate_of = ticket.duplicate_of if ticket.status == Status.DUPLICATE else None
        address, lat, lon = public_place(ticket, settings.open311_public_location)
        return ServiceRequest(
            service_request_id=ticket.ticket_id,
            status="closed" if closed else "open",
            status_notes=f"duplicate of {duplicate_of}" if duplicate_of else ticket.status,
            service_name=category.name if category else None,
            service_code=code,
            description=_unnumbered(ticket.text) if ticket.channel == "open311" and ticket.text else None,
            media_url=ticket.media_url,
            agency_responsible=deps.department_names.get(ticket.department or ""),
            requested_datetime=when(ticket.received_at),
            updated_datetime=when(ticket.updated_at),
            expected_datetime=when(ticket.feedback_due_at),
            address=address,
            lat=lat,
            long=lon,
        ).model_dump()

    async def discovery(request: Request) -> Response:
        await deps.limit("open311_read", client_ip(request))
        return render(
            request.path_params["fmt"],
            "discovery",
            {
                "changeset": CHANGESET,
                "contact": settings.open311_contact,
                "key_service": "api keys are issued by the hotline's operators",
                "endpoints": [
                    {
                        "specification": SPEC,
                        "url": base_url,
                        "changeset": CHANGESET,
                        "type": "production",
                        "formats": ["text/xml", "application/json"],
                    }
                ],
            },
        )

    async def services(request: Request) -> Response:
        await deps.limit("open311_read", client_ip(request))
        listing = [
            Service(
                service_code=c.code,
                service_name=c.name,
                description=c.description,
                metadata=bool(c.attributes),
                type="realtime",
                keywords=", ".join(c.keywords),
                group=c.group,
            ).model_dump()
            for c in taxonomy.categories
        ]
        return render(request.path_params["fmt"], "services", listing)

    async def definition(request: Request) -> Response:
        await deps.limit("open311_read", client_ip(request))
        category = taxonomy.get(request.path_params["service_code"])
        if category is None:
            raise HttpError(404, "not_found", "no such service_code")
        attributes = [
            {
                "variable": True,
                "code": a.code,
                "datatype": a.datatype,
                "required": a.required,
                "datatype_description": a.datatype_description,
                "order": order,
                "description": a.description,
                "values": [{"key": v.key, "name": v.name} for v in a.values],
            }
            for order, a in enumerate(category.attributes, start=1)
        ]
        return render(
            request.path_params["fmt"],
            "service_definition",
            {"service_code": category.code, "attributes": attributes},
        )

    async def create(request: Request) -> Response:
        params = await form_of(request, settings.max_body_bytes)
        fields = {k: v for k, v in params if v != "" and not k.startswith("attribute[")}
        client = deps.open311_keys.identify(fields.get("api_key"))
        if client is None:
            raise HttpError(403, "bad_api_key", "a valid api_key is required to create a request")
        form = _validated(ServiceRequestForm, fields)
        category = taxonomy.get(form.service_code)
        if category is None:
            raise _bad(f"unknown service_code {form.service_code!r}")
        attributes = _attributes(category, params)
        # A client's retry (the same Idempotency-Key, or the same form within the retry window) finds the
        # first ticket. The same form in a later window is a new report (a light out again at the same
        # pin): the ticket id follows from the source id, so without the window it would be folded into
        # the old, perhaps closed, ticket for good. A retry straddling two windows gets a second ticket,
        # which the classifier links to the first as a duplicate while that one is open. The form is
        # compared as its fields, not its bytes: a multipart retry comes with a new boundary; and without
        # the api_key, which the client (named by it) may rotate between two tries.
        said = urlencode([(k, v) for k, v in params if k != "api_key"]).encode()
        key = request.headers.get("idempotency-key")
        source = key.encode() if key else said + b"\x1f" + str(retry_window()).encode()
        source_id = hashlib.sha256(client.encode() + b"\x1f" + source).hexdigest()[:32]
        fingerprint = hashlib.sha256(said).hexdigest()[:32] if key else None
        event = deps.received(
            "open311",
            source_id,
            text=(form.description or "").strip() or category.name,
            caller=form.phone,
            title=category.name,
            location=Location(lat=form.lat, lon=form.long, address=form.address_string or form.address_id),
            service_code=category.code,
            attributes=attributes or None,
            media_url=form.media_url,
        )
        rate = deps.rate("open311_write", client)
        result = await deps.accept(event, delivery_id=None, rate=rate, fingerprint=fingerprint)
        if result.duplicate and fingerprint is not None:
            # IETF idempotency-key draft: a key reused for another request is the client's error, and the
            # first request's answer would silently lose the second report.
            first = await available(deps.redis.hget(keys.ticket(result.ticket_id), "request_fingerprint"))
            if first is not None and as_str(first) != fingerprint:
                raise HttpError(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used for a different request; use a new key",
                )
        created = Created(service_request_id=result.ticket_id, service_notice="")
        return render(request.path_params["fmt"], "service_requests", [created.model_dump()], 201)

    async def search(request: Request) -> Response:
        await deps.limit("open311_read", client_ip(request))
        query = request.query_params
        ids = _split(query.get("service_request_id"))
        if ids:
            found = await available(deps.store.get_many(ids[:MAX_IDS]))
            return render(
                request.path_params["fmt"], "service_requests", [record(t) for t in found if t is not None]
            )
        statuses = set(_split(query.get("status")))
        if statuses - {"open", "closed"}:
            raise _bad("status is open, closed or both (comma separated)")
        codes = set(_split(query.get("service_code")))
        start, end = _window(query, deps, timedelta(days=DEFAULT_DAYS))

        def wanted(item: dict[str, Any]) -> bool:
            return (not statuses or item["status"] in statuses) and (
                not codes or item["service_code"] in codes
            )

        found_by_id: dict[str, Ticket] = {}
        offset = 0
        # Filters apply after the time index, so read it in pages; bounded so one query stays cheap.
        while len(found_by_id) < MAX_REQUESTS and offset < 10 * MAX_REQUESTS:
            page = await available(
                deps.store.recent_ids(start, end, MAX_REQUESTS, offset=offset, newest_first=True)
            )
            for ticket in await available(deps.store.get_many(page, rehydrate=False)):
                if ticket is not None and wanted(record(ticket)):
                    found_by_id[ticket.ticket_id] = ticket
            if len(page) < MAX_REQUESTS:
                break
            offset += MAX_REQUESTS
        if deps.record is not None:
            # The record, for what Redis no longer holds; where Redis still has a ticket, its state wins.
            recorded = await available(deps.record.search(start, end, statuses, codes, MAX_REQUESTS))
            current = await available(deps.store.get_many([t.ticket_id for t in recorded], rehydrate=False))
            for old, new in zip(recorded, current, strict=True):
                ticket = new or old
                if ticket.ticket_id not in found_by_id and wanted(record(ticket)):
                    found_by_id[ticket.ticket_id] = ticket
        newest = sorted(found_by_id.values(), key=_received, reverse=True)[:MAX_REQUESTS]
        return render(request.path_params["fmt"], "service_requests", [record(t) for t in newest])

    async def one(request: Request) -> Response:
        await deps.limit("open311_read", client_ip(request))
        ticket = await available(deps.store.get(request.path_params["service_request_id"]))
        if ticket is None:
            raise HttpError(404, "not_found", "no such service_request_id")
        return render(request.path_params["fmt"], "service_requests", [record(ticket)])

    async def token(request: Request) -> Response:
        # Requests are created at once (type realtime): a token is the request id itself.
        await deps.limit("open311_read", client_ip(request))
        value = request.path_params["token"]
        if await available(deps.store.get(value)) is None:
            raise HttpError(404, "not_found", "no such token")
        return render(
            request.path_params["fmt"], "service_requests", [{"service_request_id": value, "token": value}]
        )

    def update(item: Update) -> dict[str, Any]:
        status = str(item.entry["status"])
        department = str(item.entry.get("department") or "")
        return RequestUpdate(
            update_id=f"{item.ticket_id}-{item.index}",
            service_request_id=item.ticket_id,
            status=FMS_STATUS.get(status, "closed" if status in CLOSED else "open"),
            updated_datetime=when(item.at) or "",
            description=_described(
                item.entry, deps.department_names.get(department, department or "the hotline")
            ),
        ).model_dump()

    async def updates(request: Request) -> Response:
        await deps.limit("open311_read", client_ip(request))
        query = request.query_params
        start, end = _window(query, deps, UPDATES_DEFAULT)
        # Times are shown to the second, and FixMyStreet drops an update shown outside the window it
        # asked for: an end given to the second takes in that whole second, as the time shown does.
        if end.microsecond == 0:
            end += timedelta(microseconds=999_999)
        ids = _split(query.get("service_request_id"))
        only = ids[:MAX_IDS] if ids else None
        found = await available(deps.store.updates(start, end, MAX_UPDATES, ticket_ids=only))
        if deps.record is not None:
            # Redis indexes 90 days of changes and loses a ticket's when it leaves; the record has all.
            recorded = await available(deps.record.updates(start, end, MAX_UPDATES, ticket_ids=only))
            found = merged_updates(found, recorded, MAX_UPDATES)
        return render(request.path_params["fmt"], "service_request_updates", [update(u) for u in found])

    async def comment(request: Request) -> Response:
        """A citizen's update (FixMyStreet's POST servicerequestupdates): on the ticket's history, and to
        the department through tickets.updated (dispatch forwards it). The client's update_id makes a
        retry publish once and answer the same update_id."""
        params = await form_of(request, settings.max_body_bytes)
        fields = {k: v for k, v in params if v != ""}
        client = deps.open311_keys.identify(fields.get("api_key"))
        if client is None:
            raise HttpError(403, "bad_api_key", "a valid api_key is required to post an update")
        form = _validated(UpdateForm, fields)
        ticket = await available(deps.store.get(form.service_request_id))
        if ticket is None:
            raise HttpError(404, "not_found", "no such service_request_id")
        said = (form.description or "").strip() or None
        event = TicketUpdated(
            event_id=derive_id(ticket.ticket_id, "citizen", client, form.update_id),
            ticket_id=ticket.ticket_id,
            occurred_at=utcnow(),
            department=ticket.department or "",
            action="comment",
            note=said,
            citizen_status=form.status,
            media_url=form.media_url,
        )
        result = await deps.publish_once(
            "open311_update",
            streams.UPDATED,
            event,
            history={
                "event": "citizen_comment",
                "summary": f"citizen via Open311 ({form.status}): {(said or 'no text')[:200]}",
            },
            rate=deps.rate("open311_write", client),
        )
        answer = [UpdateCreated(update_id=result.event_id).model_dump()]
        return render(request.path_params["fmt"], "service_request_updates", answer)

    def route(path: str, name: str, endpoint: Any, method: str = "GET") -> Route:
        return Route(
            BASE + path,
            instrumented(f"open311_{name}", deps.metrics, endpoint, render_error),
            methods=[method],
        )

    return [
        route("/discovery{fmt:open311_fmt}", "discovery", discovery),
        route("/services{fmt:open311_fmt}", "services", services),
        route("/services/{service_code:open311_id}{fmt:open311_fmt}", "definition", definition),
        route("/requests{fmt:open311_fmt}", "create", create, "POST"),
        route("/requests{fmt:open311_fmt}", "requests", search),
        route("/requests/{service_request_id:open311_id}{fmt:open311_fmt}", "request", one),
        route("/tokens/{token:open311_id}{fmt:open311_fmt}", "token", token),
        route("/servicerequestupdates{fmt:open311_fmt}", "updates", updates),
        route("/servicerequestupdates{fmt:open311_fmt}", "comment", comment, "POST"),
    ]


def _received(ticket: Ticket) -> datetime:
    return ticket.received_at or _EARLIEST


def _window(query: QueryParams, deps: Deps, default: timedelta) -> tuple[datetime, datetime]:
    """start_date and end_date; the window ends now and lasts `default` unless given. A start after now
    with no end asks for what has not happened yet: an empty window, not a contradiction."""
    start = _date(query, "start_date", deps)
    end = _date(query, "end_date", deps)
    if start is not None and end is not None and start > end:
        raise _bad("start_date is after end_date")
    if end is None:
        end = max(utcnow(), start) if start is not None else utcnow()
    if start is None:
        start = end - default if end > _EARLIEST + default else end
    return start, end


def _date(query: QueryParams, name: str, deps: Deps) -> datetime | None:
    if name not in query:
        return None
    # An empty value is a client's bug (a form field left blank), not "no limit": say so.
    value = query[name].strip()
    if not value:
        raise _bad(f"{name} is empty: give an ISO 8601 datetime or leave it out")
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "+"))
    except ValueError:
        raise _bad(f"{name} must be an ISO 8601 datetime, e.g. 2026-01-31T08:00:00+08:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=deps.zone)
