"""The served OpenAPI document, built from each route's declaration and its pydantic models.

Every route module lists its `Operation`s beside its routes, so the document cannot drift from the
models that validate the requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"


class ProblemDetail(BaseModel):
    code: str
    message: str
    fields: list[dict[str, Any]] | None = None


class Problem(BaseModel):
    """Every refusal outside Open311: a machine-readable code, a message, and the fields at fault."""

    error: ProblemDetail


class TicketAccepted(BaseModel):
    ticket_id: str
    duplicate: bool


class EventAccepted(BaseModel):
    event_id: str
    duplicate: bool


class Open311Error(BaseModel):
    code: int
    description: str


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["path", "query", "header"]
    description: str
    required: bool = True
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Operation:
    method: Literal["get", "post"]
    path: str
    summary: str
    tag: str
    ok: int = 200
    body: type[BaseModel] | None = None
    media: str = "application/json"
    answer: type[BaseModel] | None = None
    answer_is_list: bool = False
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    open311: bool = False
    security: str | None = None


SIGNED = (
    Param("webhook-id", "header", "Standard Webhooks message id (also the de-duplication key)"),
    Param("webhook-timestamp", "header", "Unix seconds; refused outside 5 minutes"),
    Param("webhook-signature", "header", "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space separated"),
)


def document(operations: list[Operation], title: str, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = {Problem, Open311Error}
    for op in operations:
        models |= {m for m in (op.body, op.answer) if m is not None}
    _, defs = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)], ref_template=REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "department": {"type": "http", "scheme": "bearer", "description": "a department's token"},
                "operator": {"type": "http", "scheme": "bearer", "description": "an operator's token"},
                "supervisor": {"type": "http", "scheme": "bearer", "description": "a supervisor's token"},
            },
        },
    }


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "operationId": _operation_id(op)}
    if op.params:
        out["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required,
                "description": p.description,
                "schema": p.schema,
            }
            for p in op.params
        ]
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {op.media: {"schema": _ref(op.body)}}}
    ok: dict[str, Any] = {"description": "success"}
    if op.answer is not None:
        schema = {"type": "array", "items": _ref(op.answer)} if op.answer_is_list else _ref(op.answer)
        ok["content"] = {"application/json": {"schema": schema}}
    error_schema = {"type": "array", "items": _ref(Open311Error)} if op.open311 else _ref(Problem)
    responses: dict[str, Any] = {str(op.ok): ok}
    for status in sorted({*op.errors, 413, 429, 503} if op.method == "post" else {*op.errors, 429, 503}):
        responses[str(status)] = {
            "description": _REASONS[status],
            "content": {"application/json": {"schema": error_schema}},
        }
    out["responses"] = responses
    if op.security:
        out["security"] = [{op.security: []}]
    return out


def _operation_id(op: Operation) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in op.path).strip("_")
    return f"{op.method}_{cleaned}"


_REASONS = {
    400: "malformed request",
    401: "bad or missing signature or credential",
    403: "the credential may not do this",
    404: "unknown ticket or resource",
    409: "the ticket's state does not allow this",
    413: "body too large",
    415: "unsupported content type",
    422: "the payload does not match the schema; the fields are listed",
    429: "rate limited; see Retry-After",
    503: "storage unavailable; retry",
}
