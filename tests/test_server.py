"""The server as a whole: demo mode and its seed, start-up refusals, health, metrics, OpenAPI."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from callcenter.config import Settings, load_settings
from callcenter.demo import seed
from callcenter.server import Server, StartupRefused
from tests.conftest import ApiClient, make_settings

REPO = Path(__file__).resolve().parent.parent


def _demo_settings(database_url: str, folder: Path) -> Settings:
    demo = load_settings(REPO / "config" / "demo.toml", env={})
    return dataclasses.replace(make_settings(database_url, folder), mode="demo", seed=demo.seed)


async def test_demo_seed_and_refusal_outside_demo_mode(database_url: str, tmp_path: Path) -> None:
    settings = _demo_settings(database_url, tmp_path)
    server = Server(settings)
    await server.start()
    try:
        assert server.services is not None
        assert await seed(server.services) is True
        assert await seed(server.services) is False  # once only
        client = ApiClient(server.url)
        try:
            password = settings.seed["password"]
            assert (await client.login("1001", password)).status == 200
            agents = await client.get("/api/v1/users", role="agent")
            assert agents.status == 403  # an agent may not list users
            other = ApiClient(server.url)
            try:
                assert (await other.login("supervisor", password)).status == 200
                agents = await other.get("/api/v1/users", role="agent")
                names = [u["username"] for u in agents.body["items"]]
                assert names == ["1001", "1002", "1003", "1004", "1005"]
            finally:
                await other.close()
            customers = await client.get("/api/v1/customers")
            assert {c["tier"] for c in customers.body["items"]} == {"key", "normal", "small"}
            tickets = await client.get("/api/v1/tickets")
            assert {t["status"] for t in tickets.body["items"]} >= {"new", "open", "pending"}
            queues = await client.get("/api/v1/queues")
            assert "complaints" in {q["name"] for q in queues.body["items"]}
        finally:
            await client.close()
    finally:
        await server.stop()

    production = dataclasses.replace(settings, mode="production")
    with pytest.raises(StartupRefused, match="demo passwords"):
        await Server(production).start()


async def test_health_metrics_and_openapi(client: ApiClient) -> None:
    health = await client.get("/healthz")
    assert health.body["status"] == "ok"
    await client.login("agent")
    await client.get("/api/v1/customers")
    metrics = await client.get("/metrics")
    assert metrics.status == 200
    assert (
        'callcenter_http_requests_total{method="GET",route="/api/v1/customers",status="200"}'
        in (metrics.body)
    )
    assert "callcenter_spool_backlog" in metrics.body
    assert "callcenter_consoles 0.0" in metrics.body
    console = await client.console()
    assert (await console.receive_json(timeout=5))["type"] == "welcome"
    assert "callcenter_consoles 1.0" in (await client.get("/metrics")).body
    await console.close()
    doc = await client.get("/api/v1/openapi.json")
    assert doc.body["openapi"].startswith("3.")
    paths = doc.body["paths"]
    assert "post" in paths["/api/v1/tickets/{ticket_id}/transitions"]
    create = paths["/api/v1/customers"]["post"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["name"] and schema["additionalProperties"] is False
    assert create["x-required-role"] == "agent"
    assert paths["/api/v1/users"]["post"]["x-required-role"] == "supervisor"


def test_cli_users_add_and_db_upgrade(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env["CALLCENTER_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    cli = [sys.executable, "-m", "callcenter.cli"]
    upgraded = subprocess.run(
        [*cli, "db", "upgrade"], env=env, capture_output=True, text=True, check=False
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert "revision" in upgraded.stdout
    added = subprocess.run(
        [
            *cli,
            "users",
            "add",
            "7001",
            "--role",
            "agent",
            "--extension",
            "7001",
            "--sip-secret",
            "secret-7001",
            "--skill",
            "billing=4",
            "--password-stdin",
        ],
        env=env,
        input="a-long-password\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    again = subprocess.run(
        [*cli, "users", "add", "7001", "--role", "agent", "--password-stdin"],
        env=env,
        input="a-long-password\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 1 and "already taken" in again.stderr
    bad = subprocess.run(
        [*cli, "serve"],
        env={**env, "CALLCENTER_HTTP_PORT": "http"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "http.port" in bad.stderr
