"""Telephony: the call centre posts each finished call as signed JSON (Standard Webhooks)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.intake.deps import Deps, accepted
from services.intake.http import client_ip, instrumented
from services.intake.models import TelephonyCall
from services.intake.openapi import SIGNED, Operation, TicketAccepted
from services.intake.privacy import caller_ref
from shared.events import TicketReceived, utcnow
from shared.ids import derive_id, ticket_id_for

PATH = "/v1/webhooks/telephony"

OPERATIONS = [
    Operation(
        "post",
        PATH,
        "A finished call from the call centre (signed JSON); 202 once stored, the same ticket for a retry",
        "webhooks",
        ok=202,
        body=TelephonyCall,
        answer=TicketAccepted,
        params=SIGNED,
        errors=(400, 401, 415, 422),
    )
]


def routes(deps: Deps) -> list[Route]:
    caller_key = deps.settings.caller_hash_key.encode()

    async def telephony(request: Request) -> Response:
        webhook_id, call = await deps.signed_json(request, deps.settings.webhook_secrets, TelephonyCall)
        ticket_id = ticket_id_for("telephony", call.call_id)
        now = utcnow()
        event = TicketReceived(
            event_id=derive_id(ticket_id, "received"),
            ticket_id=ticket_id,
            occurred_at=now,
            channel="telephony",
            source_id=call.call_id,
            text=call.text(),
            language=call.language,
            caller=caller_ref(call.caller, caller_key) if call.caller else None,
            location=call.location,
            ivr_choice=call.ivr_choice,
            received_at=now,
        )
        rate = deps.rate("webhook", client_ip(request))
        return accepted(await deps.accept(event, delivery_id=webhook_id, rate=rate))

    return [Route(PATH, instrumented("telephony", deps.metrics, telephony), methods=["POST"])]
