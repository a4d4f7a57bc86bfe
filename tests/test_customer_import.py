"""``callcenter customers import``: rows stored, bad rows reported by line, files refused."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from callcenter.customer_import import ImportLimits, Progress, run_import
from callcenter.store import db
from callcenter.store.customers import CustomerView, create_customer, load_contacts
from callcenter.store.models import Customer, CustomerContact
from tests.conftest import make_settings

# Physical lines matter: the quoted notes of lines 2-3 and 12-13 span two lines each.
MIXED = (
    "notes,name,phones,account_number,tier,emails,value_score,tags,language,company\n"
    '"第一行\n第二行",华泰贸易,021 6234 5678;+86 138-0013-8000,HT-1,key,'
    "Buyer@Huatai.Example,90,vip;wholesale,zh-CN,华泰集团\n"
    ",Bad Phone,12345,BP-1,,,,,,\n"
    ",Gold Tier,,GT-1,gold,,,,,\n"
    ",,13912345678,N-1,,,,,,\n"
    ",Second Huatai,,HT-1,,,,,,\n"
    ",Already There,,EXIST-1,,,,,,\n"
    ",Half Score,,HS-1,,,12.5,,,\n"
    ", Liu Yang ,13912345678,,,LY@Example.CN; ly@example.cn,,,en,\n"
    ",Too Many,,TM-1,,,,,,,extra\n"
    '"a\nb",张伟,,ZW-1,vip,,,,,\n'
    ",王芳,+86 10 6552 9988,WF-1,small,,,,,\n"
    ",Minus,,MS-1,,,-1,,,\n"
)
MIXED_REJECTS = [
    ("4", "phones item 1: '12345' is not a valid phone number"),
    ("5", "tier: must be one of: key, normal, small"),
    ("6", "name: is required"),
    ("7", "account_number: 'HT-1' is also on line 2"),
    ("8", "account_number: 'EXIST-1' is already used by another customer"),
    ("9", "value_score: must be an integer"),
    ("11", "has 11 fields, the header has 10"),
    ("12", "tier: must be one of: key, normal, small"),
    ("15", "value_score: must be between 0 and 1000000000"),
]


def write(path: Path, content: str, *, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + content.encode())
    return path


async def seed(url: str, **existing: Any) -> None:
    """Create the schema, and a customer when ``existing`` is given."""
    engine = db.create_engine(url)
    try:
        await db.upgrade(engine)
        if existing:
            async with db.session_factory(engine)() as session:
                await create_customer(session, existing, "CN")
                await session.commit()
    finally:
        await engine.dispose()


async def stored(url: str) -> dict[str, CustomerView]:
    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            customers = list((await session.execute(select(Customer))).scalars())
            views = await load_contacts(session, customers)
    finally:
        await engine.dispose()
    return {view.customer.name: view for view in views.values()}


async def count(url: str, table: type[Any]) -> int:
    engine = db.create_engine(url)
    try:
        async with db.session_factory(engine)() as session:
            return int(
                (await session.execute(select(func.count()).select_from(table))).scalar_one()
            )
    finally:
        await engine.dispose()


def read_rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


async def test_good_rows_are_stored_and_bad_rows_reported_by_line(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed(database_url, name="Existing", account_number="EXIST-1")
    source = write(tmp_path / "customers.csv", MIXED, bom=True)
    settings = make_settings(database_url, tmp_path)

    code = await run_import(settings, source, None)

    captured = capsys.readouterr()
    rejects = tmp_path / "customers.csv.rejects.csv"
    assert code == 1
    assert captured.out == f"imported 3 customers, 9 rejected (see {rejects})\n"
    reported = [line for line in captured.err.splitlines() if line.startswith("line ")]
    assert reported == [f"line {line}: {reason}" for line, reason in MIXED_REJECTS]

    customers = await stored(database_url)
    assert sorted(customers) == ["Existing", "Liu Yang", "华泰贸易", "王芳"]
    huatai = customers["华泰贸易"]
    assert huatai.customer.account_number == "HT-1"
    assert huatai.customer.company == "华泰集团"
    assert huatai.customer.tier == "key"
    assert huatai.customer.value_score == 90
    assert huatai.customer.tags == ["vip", "wholesale"]
    assert huatai.customer.language == "zh-CN"
    assert huatai.customer.notes == "第一行\n第二行"
    assert [p["number"] for p in huatai.phones] == ["+862162345678", "+8613800138000"]
    assert huatai.emails == [{"email": "buyer@huatai.example"}]
    liu = customers["Liu Yang"]
    assert liu.customer.account_number is None
    assert (liu.customer.tier, liu.customer.value_score, liu.customer.tags) == ("normal", 0, [])
    assert [p["number"] for p in liu.phones] == ["+8613912345678"]
    assert liu.emails == [{"email": "ly@example.cn"}]  # the same address twice, kept once
    assert [p["number"] for p in customers["王芳"].phones] == ["+861065529988"]

    rows = read_rejects(rejects)
    assert [(row["line"], row["reason"]) for row in rows] == MIXED_REJECTS
    with rejects.open(encoding="utf-8-sig", newline="") as stream:
        header = next(csv.reader(stream))
    assert header == [*MIXED.splitlines()[0].split(","), "line", "reason"]
    zhang = next(row for row in rows if row["line"] == "12")
    assert (zhang["name"], zhang["notes"], zhang["tier"]) == ("张伟", "a\nb", "vip")
    assert rejects.read_bytes().startswith(b"\xef\xbb\xbf")  # as the input had one


async def test_a_clean_file_leaves_no_rejects_file(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(
        tmp_path / "clean.csv",
        "name,phones,tier\n陈静,138 0013 8000,key\r\nZhou Min,,\r\n",
    )
    stale = tmp_path / "clean.csv.rejects.csv"
    stale.write_text("from an earlier run\n")

    code = await run_import(make_settings(database_url, tmp_path), source, None)

    assert code == 0
    assert capsys.readouterr().out == "imported 2 customers, 0 rejected\n"
    assert not stale.exists()
    customers = await stored(database_url)
    assert customers["陈静"].customer.tier == "key"
    assert [p["number"] for p in customers["陈静"].phones] == ["+8613800138000"]
    assert customers["Zhou Min"].phones == []


async def test_an_unknown_column_refuses_the_whole_file(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed(database_url)
    source = write(tmp_path / "c.csv", "name,phone,tier\nA,13800138000,key\nB,,\n")

    code = await run_import(make_settings(database_url, tmp_path), source, None)

    captured = capsys.readouterr()
    assert code == 2
    assert "unknown column 'phone'" in captured.err
    assert captured.out == ""
    assert await count(database_url, Customer) == 0
    assert not (tmp_path / "c.csv.rejects.csv").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"account_number,tier\nA-1,key\n", "the header has no 'name' column"),
        (b"name,Name\nA,B\n", "column 'name' appears twice"),
        (b"name,,tier\nA,,key\n", "column 2 of the header has no name"),
        (b"", "the file is empty"),
        ("name,notes\n张伟,ok\n".encode("gbk"), "line 2 is not valid UTF-8"),
    ],
)
async def test_files_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    await seed(url)
    source = tmp_path / "c.csv"
    source.write_bytes(content)

    code = await run_import(make_settings(url, tmp_path), source, None)

    assert code == 2
    assert message in capsys.readouterr().err
    assert await count(url, Customer) == 0


async def test_a_missing_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    code = await run_import(make_settings(url, tmp_path), tmp_path / "nowhere.csv", None)
    assert code == 2
    assert "cannot read it" in capsys.readouterr().err


async def test_an_unreachable_database_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path / "c.csv", "name\nA\n")
    settings = make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/none", tmp_path)

    code = await run_import(settings, source, None)

    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("error: the import stopped: ")
    assert captured.out == "imported 0 customers, 0 rejected\n"


async def test_a_large_file_imports_completely(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = 5_000
    lines = ["name,account_number,phones,emails,tier"]
    lines += [
        f"客户 {i},ACC-{i},+86 138 {i:04d} {i:04d},user{i}@Example.com,small" for i in range(rows)
    ]
    source = write(tmp_path / "big.csv", "\n".join(lines) + "\n")

    code = await run_import(make_settings(database_url, tmp_path), source, None)

    assert code == 0
    assert capsys.readouterr().out == f"imported {rows} customers, 0 rejected\n"
    assert await count(database_url, Customer) == rows
    assert await count(database_url, CustomerContact) == 2 * rows


async def test_a_row_the_database_refuses_costs_no_other_row_of_its_batch(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed(database_url)
    # A trigger stands in for a constraint the checks before the insert cannot
    # see (another writer taking an account number meanwhile, say).
    engine = db.create_engine(database_url)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                await conn.execute(
                    text(
                        "CREATE TRIGGER refuse_bomb BEFORE INSERT ON customers "
                        "WHEN NEW.name = 'Bomb' BEGIN SELECT RAISE(ABORT, 'bomb refused'); END"
                    )
                )
            else:
                await conn.execute(
                    text(
                        "CREATE FUNCTION refuse_bomb() RETURNS trigger AS $$ BEGIN "
                        "IF NEW.name = 'Bomb' THEN RAISE EXCEPTION 'bomb refused' "
                        "USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$ "
                        "LANGUAGE plpgsql"
                    )
                )
                await conn.execute(
                    text(
                        "CREATE TRIGGER refuse_bomb BEFORE INSERT ON customers "
                        "FOR EACH ROW EXECUTE FUNCTION refuse_bomb()"
                    )
                )
    finally:
        await engine.dispose()
    names = [f"Row {i}" for i in range(10)]
    names[6] = "Bomb"
    source = write(
        tmp_path / "c.csv", "name,phones\n" + "".join(f"{n},13800138000\n" for n in names)
    )

    code = await run_import(
        make_settings(database_url, tmp_path), source, None, limits=ImportLimits(batch_size=4)
    )

    captured = capsys.readouterr()
    assert code == 1
    assert "line 8: the database refused the row: bomb refused" in captured.err.splitlines()
    assert sorted(await stored(database_url)) == sorted(n for n in names if n != "Bomb")
    assert await count(database_url, CustomerContact) == 9
    assert [row["line"] for row in read_rejects(tmp_path / "c.csv.rejects.csv")] == ["8"]


async def test_unreadable_rows_and_size_limits_are_bad_rows_not_crashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    big = "y\n" * 60
    content = (
        "name,notes\n"
        "Before,ok\n"
        f"Long Line,{'x' * 300}\n"
        'Broken,"quoted"then text\n'
        f'Big Field,"{big}"\n'
        "After,ok\n"
    )
    source = write(tmp_path / "c.csv", content)
    rejects = tmp_path / "out" / "bad.csv"
    rejects.parent.mkdir()
    limit_before = csv.field_size_limit()

    code = await run_import(
        make_settings(url, tmp_path),
        source,
        rejects,
        limits=ImportLimits(max_line_bytes=200, max_field_chars=100),
    )

    captured = capsys.readouterr()
    assert code == 1
    assert "line 3: line 3 is longer than 200 bytes" in captured.err
    assert "line 4: not valid CSV: ',' expected after '\"'" in captured.err
    assert "line 5: not valid CSV: field larger than field limit (100)" in captured.err
    assert captured.out == f"imported 2 customers, 3 rejected (see {rejects})\n"
    assert sorted(await stored(url)) == ["After", "Before"]
    assert [row["line"] for row in read_rejects(rejects)] == ["3", "4", "5"]
    assert csv.field_size_limit() == limit_before


async def test_progress_shows_only_for_large_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    settings = make_settings(url, tmp_path)
    large = write(tmp_path / "large.csv", "name\n" + "".join(f"L{i}\n" for i in range(30)))
    limits = ImportLimits(batch_size=10, progress_min_rows=20, progress_log_seconds=0)

    assert await run_import(settings, large, None, limits=limits) == 0

    progress = capsys.readouterr().err.splitlines()
    assert [line.split(" rows")[0] for line in progress] == [
        "importing: 10/30",
        "importing: 20/30",
        "importing: 30/30",
    ]
    assert progress[-1].startswith("importing: 30/30 rows 100.0% ")

    small = write(tmp_path / "small.csv", "name\n" + "".join(f"S{i}\n" for i in range(30)))
    limits = ImportLimits(batch_size=10, progress_min_rows=31, progress_log_seconds=0)
    assert await run_import(settings, small, None, limits=limits) == 0
    assert capsys.readouterr().err == ""


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_on_a_terminal_and_logs_now_and_then_elsewhere() -> None:
    now = [0.0]
    log = io.StringIO()
    progress = Progress(log, 1000, log_seconds=5, clock=lambda: now[0])
    for done in range(100, 1001, 100):
        now[0] += 1.0
        progress.update(done)
    progress.finish()
    assert log.getvalue().splitlines() == [
        "importing: 500/1,000 rows  50.0% 100 rows/s",
        "importing: 1,000/1,000 rows 100.0% 100 rows/s",
    ]

    now[0] = 0.0
    tty = FakeTerminal()
    bar = Progress(tty, 200, redraw_seconds=0.1, clock=lambda: now[0])
    now[0] = 1.0
    bar.update(100)
    bar.note("line 7: name: is required")
    now[0] = 2.0
    bar.update(200)
    bar.finish()
    screen = tty.getvalue()
    assert screen.startswith("\r[" + "#" * 15 + "." * 15 + "] 100/200 rows  50.0% 100 rows/s")
    assert "\r\x1b[Kline 7: name: is required\n\r[" in screen
    assert screen.endswith("] 200/200 rows 100.0% 100 rows/s\x1b[K\n")


def test_the_console_script(tmp_path: Path) -> None:
    source = write(
        tmp_path / "c.csv",
        "name,tier,phones\n李娜,key,13800138000\nNobody,,not a number\n",
        bom=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env["CALLCENTER_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    script = Path(sys.executable).parent / "callcenter"

    done = subprocess.run(
        [str(script), "customers", "import", str(source), "--rejects", "bad.csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    assert done.stdout == "imported 1 customers, 1 rejected (see bad.csv)\n"
    assert "line 3: phones item 1: 'not a number' is not a valid phone number" in done.stderr
    assert [row["name"] for row in read_rejects(tmp_path / "bad.csv")] == ["Nobody"]

    unknown = write(tmp_path / "u.csv", "name,fax\nX,1\n")
    refused = subprocess.run(
        [str(script), "customers", "import", str(unknown)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "unknown column 'fax'" in refused.stderr
    assert refused.stdout == ""
