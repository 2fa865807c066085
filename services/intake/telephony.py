"""Telephony: the call centre posts each finished call as signed JSON (Standard Webhooks)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.intake.deps import Deps, accepted
from services.intake.http import client_ip, instrumented
from services.intake.models import TelephonyCall
from services.intake.openapi import SIGNED, Operation, TicketAccepted

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
    async def telephony(request: Request) -> Response:
        webhook_id, call = await deps.signed_json(request, deps.settings.webhook_secrets, TelephonyCall)
        event = deps.received(
            "telephony",
            call.call_id,
            text=call.text(),
            caller=call.caller,
            language=call.language,
            location=call.location,
            ivr_choice=call.ivr_choice,
            handle_seconds=call.handle_seconds(),
        )
        rate = deps.rate("webhook", client_ip(request))
        return accepted(await deps.accept(event, delivery_id=webhook_id, rate=rate))

    return [Route(PATH, instrumented("telephony", deps.metrics, telephony), methods=["POST"])]
