"""The per-agent report: contacts each agent answered over a period."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from callcenter.server import Server
from tests.conftest import ApiClient
from tests.web.test_chat_flow import _agent, _customer, _setup


def _stamp(offset: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


async def test_agent_report_counts_answered_contacts(
    server: Server, client: ApiClient, new_client: Any
) -> None:
    await _setup(server, client, wrapup_seconds=0)
    agent = await _agent(server, new_client)
    async with aiohttp.ClientSession() as http:
        customer = await _customer(server, http, name="Gao", message="hi")
        contact_id = (await customer.type("queued"))["contact_id"]
        await agent.type("offer", contact_id=contact_id)
        await agent.send(type="accept", contact_id=contact_id)
        await customer.type("agent_joined")
        await customer.send(type="end")
        await agent.type("contact_ended", contact_id=contact_id)
    assert server.services is not None
    period = {"since": _stamp(-3600), "until": _stamp(3600)}
    for _ in range(100):
        await server.services.recorder.drained(10)
        report = await client.get("/api/v1/reports/agents", **period)
        if report.body["agents"]:
            break
    assert report.status == 200, report.body
    (row,) = report.body["agents"]
    assert (row["name"], row["answered"], row["csat_answers"]) == ("agent", 1, 0)
    assert row["connected_seconds"] >= 0 and row["average_connected_seconds"] is not None
    assert row["csat_average"] is None

    other = await client.get("/api/v1/reports/agents", queue="elsewhere", **period)
    assert other.status == 200 and other.body["agents"] == []
    backwards = await client.get(
        "/api/v1/reports/agents", since=period["until"], until=period["since"]
    )
    assert backwards.status == 400
    agent_api = new_client()
    await agent_api.login("agent")
    assert (await agent_api.get("/api/v1/reports/agents", **period)).status == 403
