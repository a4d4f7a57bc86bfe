"""The ``callcenter`` command."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from pathlib import Path
from typing import Any

from callcenter.config import ConfigError, Settings, load_settings

DEMO_CONFIG = Path("config/demo.toml")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _cmd_serve(args: argparse.Namespace) -> int:
    from callcenter.server import serve

    settings = _settings(args)

    def ready(server: Any) -> None:
        print(f"callcenter listening on {server.url}", flush=True)

    asyncio.run(serve(settings, ready))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from callcenter.demo import run_demo

    path = args.config or (DEMO_CONFIG if DEMO_CONFIG.exists() else None)
    if path is None:
        print(
            "error: no demo configuration; run from the project folder or pass --config",
            file=sys.stderr,
        )
        return 2
    settings = load_settings(path)
    if settings.mode != "demo":
        print(f'error: {path} does not set mode = "demo"', file=sys.stderr)
        return 2
    asyncio.run(run_demo(settings))
    return 0


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from callcenter.store import db

    settings = _settings(args)

    async def run() -> None:
        engine = db.engine_for(settings.database)
        try:
            await db.upgrade(engine)
            print(f"database at revision {await db.current_revision(engine)}")
        finally:
            await engine.dispose()

    asyncio.run(run())
    return 0


def _read_password(args: argparse.Namespace, what: str = "password") -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise SystemExit(f"error: give the {what} on standard input with --password-stdin")
    first = getpass.getpass(f"{what}: ")
    if getpass.getpass(f"{what} again: ") != first:
        raise SystemExit("error: the two entries differ")
    return first


def _parse_skills(values: list[str]) -> dict[str, int]:
    skills: dict[str, int] = {}
    for item in values:
        name, _, level = item.partition("=")
        if not name or not level.isdigit() or not 1 <= int(level) <= 5:
            raise SystemExit(f"error: --skill {item!r}: expected NAME=LEVEL with LEVEL 1-5")
        skills[name] = int(level)
    return skills


def _cmd_users_add(args: argparse.Namespace) -> int:
    from callcenter.store import db
    from callcenter.store.users import UserInputError, create_user

    settings = _settings(args)
    password = _read_password(args)

    async def run() -> int:
        engine = db.engine_for(settings.database)
        try:
            async with db.session_factory(engine)() as session:
                try:
                    user = await create_user(
                        session,
                        username=args.username,
                        password=password,
                        role=args.role,
                        realm=settings.sip.realm,
                        display_name=args.display_name or "",
                        sip_extension=args.extension,
                        sip_secret=args.sip_secret,
                        skills=_parse_skills(args.skill),
                        chat_capacity=args.chat_capacity,
                        language=args.language,
                        create_skills=True,
                    )
                except UserInputError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
                await session.commit()
                print(f"user {user.username} ({user.role}) created with id {user.id}")
                return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _cmd_users_passwd(args: argparse.Namespace) -> int:
    from sqlalchemy import delete, select

    from callcenter.credentials import hash_password_off_loop, password_problem
    from callcenter.store import db
    from callcenter.store.models import Session, User

    settings = _settings(args)
    password = _read_password(args)
    problem = password_problem(password)
    if problem:
        print(f"error: password {problem}", file=sys.stderr)
        return 1

    async def run() -> int:
        engine = db.engine_for(settings.database)
        try:
            async with db.session_factory(engine)() as session:
                user = (
                    await session.execute(select(User).where(User.username == args.username))
                ).scalar_one_or_none()
                if user is None:
                    print(f"error: no user {args.username}", file=sys.stderr)
                    return 1
                user.password_hash = await hash_password_off_loop(password)
                user.demo_credential = False
                await session.execute(delete(Session).where(Session.user_id == user.id))
                await session.commit()
                print(f"password of {user.username} changed; their sessions ended")
                return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _cmd_customers_import(args: argparse.Namespace) -> int:
    from callcenter.customer_import import run_import

    settings = _settings(args)
    rejects = Path(args.rejects) if args.rejects else None
    code: int = asyncio.run(run_import(settings, Path(args.file), rejects))
    return code


def _cmd_erlang(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import math

    from callcenter.acd import erlang

    figures: dict[str, float | int | None] = {}
    try:
        agents = args.agents
        if agents is None:
            traffic = erlang.traffic_erlangs(args.calls_per_hour, args.aht)
            agents = erlang.agents_required(traffic, args.aht, args.target, args.sl_goal)
            figures["agents_required"] = agents
        report = erlang.erlang_report(args.calls_per_hour, args.aht, agents, args.target)
    except ValueError as exc:
        print(f"callcenter erlang: error: {exc}", file=sys.stderr)
        return 2
    figures.update(dataclasses.asdict(report))
    # JSON has no infinity: an unstable queue's endless wait is reported as null.
    if math.isinf(report.asa_seconds):
        figures["asa_seconds"] = None
    print(json.dumps(figures, allow_nan=False))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    import json

    from callcenter.acd import simulate

    try:
        scenario = simulate.Scenario(
            calls_per_hour=args.calls_per_hour,
            aht_seconds=args.aht,
            agents=args.agents,
            target_seconds=args.target,
            contacts=args.contacts,
            seed=args.seed,
            patience_seconds=args.patience,
            warmup=args.warmup,
        )
    except ValueError as exc:
        print(f"callcenter simulate: error: {exc}", file=sys.stderr)
        return 2
    report = asyncio.run(simulate.run(scenario))
    print(json.dumps(report.as_json(), allow_nan=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str, sub: Any = commands) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", help="settings file (TOML); CALLCENTER_CONFIG also works")
        return p

    command("serve", "run the server").set_defaults(func=_cmd_serve)
    command("demo", "run the demo: SQLite, seeded data, server started").set_defaults(
        func=_cmd_demo
    )

    db_cmd = commands.add_parser("db", help="database maintenance")
    db_sub = db_cmd.add_subparsers(dest="db_command", required=True)
    command("upgrade", "apply database migrations", db_sub).set_defaults(func=_cmd_db_upgrade)

    users = commands.add_parser("users", help="manage users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = command("add", "add a user", users_sub)
    add.add_argument("username")
    add.add_argument("--role", choices=("agent", "supervisor", "admin"), required=True)
    add.add_argument("--display-name")
    add.add_argument("--extension", help="SIP extension (digits)")
    add.add_argument("--sip-secret", help="SIP digest secret; only its HA1 hashes are stored")
    add.add_argument("--skill", action="append", default=[], help="NAME=LEVEL (1-5); repeatable")
    add.add_argument("--chat-capacity", type=int, default=3)
    add.add_argument("--language", choices=("en", "zh-CN"), default="en")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=_cmd_users_add)
    passwd = command("passwd", "set a user's password (ends their sessions)", users_sub)
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(func=_cmd_users_passwd)

    customers = commands.add_parser("customers", help="manage customers")
    customers_sub = customers.add_subparsers(dest="customers_command", required=True)
    imp = command("import", "import customers from a CSV file", customers_sub)
    imp.add_argument("file")
    imp.add_argument("--rejects", help="where bad rows go (default: FILE.rejects.csv)")
    imp.set_defaults(func=_cmd_customers_import)

    # Pure arithmetic: no settings are read, so no --config.
    erl = commands.add_parser(
        "erlang",
        help="Erlang C staffing figures",
        description="Erlang C staffing figures for one queue, printed as one JSON object",
    )
    erl.add_argument("--calls-per-hour", type=float, required=True, metavar="R")
    erl.add_argument("--aht", type=float, required=True, metavar="S", help="average handle time, s")
    erl.add_argument(
        "--target", type=float, required=True, metavar="T", help="service-level target, s"
    )
    staffing = erl.add_mutually_exclusive_group(required=True)
    staffing.add_argument("--agents", type=int, metavar="N", help="figures for N agents")
    staffing.add_argument(
        "--sl-goal",
        type=float,
        metavar="G",
        help="find the fewest agents answering this share (0-1) within the target",
    )
    erl.set_defaults(func=_cmd_erlang)

    # Virtual time and the in-process store: no settings are read, so no --config.
    sim = commands.add_parser(
        "simulate",
        help="simulate one queue through the router",
        description=(
            "simulate one queue through the real router in virtual time (Poisson arrivals, "
            "exponential handle times) and print the measured figures beside Erlang C's "
            "as one JSON object"
        ),
    )
    sim.add_argument("--calls-per-hour", type=float, required=True, metavar="R")
    sim.add_argument("--aht", type=float, required=True, metavar="S", help="average handle time, s")
    sim.add_argument("--agents", type=int, required=True, metavar="N")
    sim.add_argument(
        "--target", type=float, required=True, metavar="T", help="service-level target, s"
    )
    sim.add_argument("--contacts", type=int, required=True, metavar="K", help="contacts to run")
    sim.add_argument("--seed", type=int, required=True, metavar="X")
    sim.add_argument(
        "--patience",
        type=float,
        metavar="P",
        help="mean patience of a waiting caller, s (default: nobody hangs up)",
    )
    sim.add_argument(
        "--warmup",
        type=int,
        metavar="W",
        help="first contacts left out of the figures (default: one in twenty)",
    )
    sim.set_defaults(func=_cmd_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Alembic announces every plugin at INFO; only its warnings matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from callcenter.server import StartupRefused

        if isinstance(exc, StartupRefused):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    return result


if __name__ == "__main__":
    sys.exit(main())
