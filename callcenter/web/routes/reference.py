"""Reference data: disposition codes, canned responses, business hours and holidays."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select

from callcenter.store.models import BusinessHours, CannedResponse, DispositionCode, Holiday
from callcenter.web.api import Call
from callcenter.web.errors import ApiError
from callcenter.web.routes import api
from callcenter.web.schema import Bool, Int, List, Str, obj

DISPOSITION = obj(
    ("code", "label_en", "label_zh"),
    code=Str(max_length=32, min_length=1, pattern=r"[a-z0-9_\-]+"),
    label_en=Str(max_length=100, min_length=1),
    label_zh=Str(max_length=100, min_length=1),
    active=Bool(),
)
CANNED = obj(
    ("shortcut", "title", "body"),
    shortcut=Str(max_length=32, min_length=1, pattern=r"[a-z0-9_\-]+"),
    language=Str(choices=("en", "zh-CN")),
    title=Str(max_length=100, min_length=1),
    body=Str(max_length=5000, min_length=1, strip=False),
)
CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]"
CALENDAR = obj(
    ("hours", "holidays"),
    hours=List(
        obj(
            ("weekday", "opens", "closes"),
            weekday=Int(minimum=0, maximum=6),
            opens=Str(pattern=CLOCK),
            closes=Str(pattern=CLOCK),
        ),
        max_items=50,
    ),
    holidays=List(
        obj(("day", "name"), day=Str(pattern=r"\d{4}-\d{2}-\d{2}"), name=Str(max_length=100)),
        max_items=400,
    ),
)
CALENDAR_QUERY = obj(calendar=Str(max_length=64, pattern=r"[a-z0-9_\-]+"))


@api.route("GET", "/dispositions", summary="Disposition codes", tag="reference", role="agent")
async def list_dispositions(call: Call) -> Any:
    async with call.services.sessions() as db:
        rows = (await db.execute(select(DispositionCode).order_by(DispositionCode.code))).scalars()
        return {
            "items": [
                {"code": d.code, "label_en": d.label_en, "label_zh": d.label_zh, "active": d.active}
                for d in rows
            ]
        }


@api.route(
    "POST",
    "/dispositions",
    summary="Add or change a disposition code",
    tag="reference",
    role="supervisor",
    body=DISPOSITION,
    status=201,
)
async def put_disposition(call: Call) -> Any:
    body = call.body
    async with call.services.sessions() as db:
        row = await db.get(DispositionCode, body["code"]) or DispositionCode(code=body["code"])
        row.label_en, row.label_zh = body["label_en"], body["label_zh"]
        row.active = body.get("active", True)
        db.add(row)
        await db.commit()
    await call.audit("disposition.save", f"disposition:{body['code']}")
    return {
        "code": row.code,
        "label_en": row.label_en,
        "label_zh": row.label_zh,
        "active": row.active,
    }


@api.route("GET", "/canned-responses", summary="Canned responses", tag="reference", role="agent")
async def list_canned(call: Call) -> Any:
    async with call.services.sessions() as db:
        rows = (
            await db.execute(select(CannedResponse).order_by(CannedResponse.shortcut))
        ).scalars()
        return {
            "items": [
                {
                    "id": r.id,
                    "shortcut": r.shortcut,
                    "language": r.language,
                    "title": r.title,
                    "body": r.body,
                }
                for r in rows
            ]
        }


@api.route(
    "POST",
    "/canned-responses",
    summary="Add a canned response",
    tag="reference",
    role="supervisor",
    body=CANNED,
    status=201,
    errors=(409,),
)
async def add_canned(call: Call) -> Any:
    body = call.body
    language = body.get("language", "en")
    async with call.services.sessions() as db:
        exists = await db.execute(
            select(CannedResponse.id).where(
                CannedResponse.shortcut == body["shortcut"], CannedResponse.language == language
            )
        )
        if exists.first():
            raise ApiError(
                409, "conflict", "that shortcut exists in that language", {"field": "body.shortcut"}
            )
        row = CannedResponse(
            shortcut=body["shortcut"], language=language, title=body["title"], body=body["body"]
        )
        db.add(row)
        await db.commit()
    return {
        "id": row.id,
        "shortcut": row.shortcut,
        "language": row.language,
        "title": row.title,
        "body": row.body,
    }


@api.route(
    "GET",
    "/calendar",
    summary="Business hours and holidays",
    tag="reference",
    role="agent",
    query=CALENDAR_QUERY,
)
async def get_calendar(call: Call) -> Any:
    name = call.query.get("calendar", "default")
    async with call.services.sessions() as db:
        hours = (
            await db.execute(
                select(BusinessHours)
                .where(BusinessHours.calendar == name)
                .order_by(BusinessHours.weekday, BusinessHours.opens)
            )
        ).scalars()
        holidays = (
            await db.execute(select(Holiday).where(Holiday.calendar == name).order_by(Holiday.day))
        ).scalars()
        return {
            "calendar": name,
            "time_zone": call.services.settings.site.time_zone,
            "hours": [
                {
                    "weekday": h.weekday,
                    "opens": h.opens.strftime("%H:%M"),
                    "closes": h.closes.strftime("%H:%M"),
                }
                for h in hours
            ],
            "holidays": [{"day": d.day.isoformat(), "name": d.name} for d in holidays],
        }


@api.route(
    "PUT",
    "/calendar",
    summary="Replace business hours and holidays",
    tag="reference",
    role="supervisor",
    body=CALENDAR,
    query=CALENDAR_QUERY,
    errors=(422,),
)
async def put_calendar(call: Call) -> Any:
    name = call.query.get("calendar", "default")
    hours = []
    for i, span in enumerate(call.body["hours"]):
        opens, closes = dt.time.fromisoformat(span["opens"]), dt.time.fromisoformat(span["closes"])
        if closes <= opens:
            raise ApiError(
                422,
                "invalid_field",
                "closes must be after opens",
                {"field": f"body.hours[{i}].closes"},
            )
        hours.append(
            BusinessHours(calendar=name, weekday=span["weekday"], opens=opens, closes=closes)
        )
    holidays = []
    for i, day in enumerate(call.body["holidays"]):
        try:
            holidays.append(
                Holiday(calendar=name, day=dt.date.fromisoformat(day["day"]), name=day["name"])
            )
        except ValueError:
            raise ApiError(
                422, "invalid_field", "not a date", {"field": f"body.holidays[{i}].day"}
            ) from None
    if len({h.day for h in holidays}) != len(holidays):
        raise ApiError(422, "invalid_field", "a day is listed twice", {"field": "body.holidays"})
    async with call.services.sessions() as db:
        await db.execute(delete(BusinessHours).where(BusinessHours.calendar == name))
        await db.execute(delete(Holiday).where(Holiday.calendar == name))
        db.add_all(hours)
        db.add_all(holidays)
        await db.commit()
    await call.audit("calendar.save", f"calendar:{name}")
    return await get_calendar(call)
