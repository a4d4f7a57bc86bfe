"""Outbound calls: click-to-call rings the agent's phone, then the customer."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from callcenter.store.models import Customer
from callcenter.voice.dialplan import DialError
from callcenter.voice.outbound import OutboundCalls, OutboundError
from callcenter.web.api import Call
from callcenter.web.errors import ApiError
from callcenter.web.live import CENTER
from callcenter.web.routes import api
from callcenter.web.schema import Int, Str, obj

#: The outbound dialler; absent when telephony is off.
OUTBOUND: web.AppKey[OutboundCalls] = web.AppKey("outbound")

CALL = obj(
    ("number",),
    number=Str(max_length=40, min_length=1),
    customer_id=Int(minimum=1, nullable=True),
)


@api.route(
    "POST",
    "/calls",
    summary="Call a number: the agent's phone rings first, then the customer's",
    tag="calls",
    role="agent",
    body=CALL,
    status=202,
    errors=(403, 409, 422, 503),
)
async def place_call(call: Call) -> Any:
    body = call.body
    number, customer_id = body["number"], body.get("customer_id")
    detail: dict[str, Any] = {"number": number}
    try:
        outbound = call.request.app.get(OUTBOUND)
        if outbound is None:
            raise ApiError(503, "unavailable", "telephony is not enabled on this server")
        if customer_id is not None:
            async with call.services.sessions() as db:
                if await db.get(Customer, customer_id) is None:
                    raise ApiError(
                        422, "invalid_field", "no such customer", {"field": "body.customer_id"}
                    )
        try:
            call_id = await outbound.click_to_call(call.user.user_id, number, customer_id)
        except DialError as error:
            if error.code == "not_allowed":
                raise ApiError(403, "not_allowed", "your role may not dial this number") from None
            raise ApiError(
                422, "invalid_field", "not a phone number", {"field": "body.number"}
            ) from None
        except OutboundError as error:
            raise ApiError(409, error.code, str(error)) from None
    except ApiError as error:
        # Every attempt is on record, refused or not (toll fraud shows as refusals).
        await call.audit("call.dial", f"number:{number}", {**detail, "outcome": error.code})
        raise
    await call.audit(
        "call.dial", f"number:{number}", {**detail, "outcome": "allowed", "call_id": call_id}
    )
    return {"id": call_id, "status": "ringing_agent"}


@api.route(
    "GET",
    "/agents/free",
    summary="Agents who could take a call now: whom a call may be transferred to",
    tag="calls",
    role="agent",
)
async def free_agents(call: Call) -> Any:
    center = call.request.app[CENTER]
    me = str(call.user.user_id)
    free = [
        {"id": int(agent), "name": center.agent_name(agent)}
        for agent in center.joined_agents()
        if agent != me and center.free_for_call(agent)
    ]
    return {"items": sorted(free, key=lambda a: (a["name"], a["id"]))}
