"""The published contract: an AsyncAPI 3.0 document generated from the event models and stream names.

Built from `shared.events.STREAM_EVENTS` and `shared.streams.GROUPS`, so it cannot drift from the code:
one channel per stream, one message (the event's JSON Schema) per channel, a receive operation per
consumer group and a send operation per producing service.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from shared import streams
from shared.events import STREAM_EVENTS
from tools.contract_doc import as_asyncapi

# Which service appends to which stream (consumers come from streams.GROUPS).
PRODUCERS: dict[str, tuple[str, ...]] = {
    streams.RECEIVED: ("intake",),
    streams.UPDATED: ("intake",),
    streams.REROUTED: ("intake", "urgency-review"),
    streams.SURVEYS_ANSWERED: ("intake",),
    streams.CLASSIFIED: ("classifier",),
    streams.REVIEW: ("classifier",),
    streams.DISPATCHED: ("dispatch",),
    streams.ESCALATED: ("dispatch",),
    streams.REOPENED: ("evaluation",),
    streams.HOTSPOTS: ("insight",),
    streams.PROBLEMS_DETECTED: ("insight",),
    streams.PROBLEMS_ACTIONED: ("insight", "intake"),
    streams.PROBLEMS_EVALUATED: ("insight",),
}

REF = "#/components/schemas/{model}"


def document(version: str = "1") -> dict[str, Any]:
    models = sorted(set(STREAM_EVENTS.values()), key=lambda m: m.__name__)
    _, schemas = models_json_schema([(m, "serialization") for m in models], ref_template=REF)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for stream, model in STREAM_EVENTS.items():
        channel = stream.replace(".", "_")
        name = model.__name__
        messages[name] = {
            "name": name,
            "title": name,
            "summary": (model.__doc__ or name).strip().splitlines()[0],
            "contentType": "application/json",
            "payload": {"$ref": REF.format(model=name)},
        }
        channels[channel] = {
            "address": stream,
            "description": f"Redis stream `{stream}` (faststream binary envelope, field `__data__`); "
            f"dead letters in `{streams.dlq(stream)}`.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        for service in PRODUCERS.get(stream, ()):
            operations[f"{service}_sends_{channel}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"{service} appends {name}",
            }
        for group in streams.GROUPS.get(stream, ()):
            operations[f"{group}_receives_{channel}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"consumer group `{group}` reads {name} in batches",
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Hotline events",
            "version": version,
            "description": "The events Hotline's services exchange over Redis Streams. Every event carries "
            "event_id (deterministic for retries), ticket_id, occurred_at (UTC) and a schema version; "
            "consumers ignore unknown fields.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas.get("$defs", {})},
        # What the services leave in Redis, beside what they exchange: shared/contract.py.
        "x-data-contract": as_asyncapi(),
    }
