"""The screen pop against both databases."""

from __future__ import annotations

from pathlib import Path

from callcenter.cti.screen_pop import Identity, screen_pop
from callcenter.store import db
from callcenter.store.customers import create_customer
from callcenter.store.models import Customer


async def test_pop_finds_creates_and_hides_what_an_unverified_identity_may_not_see(
    database_url: str, tmp_path: Path
) -> None:
    engine = db.create_engine(database_url)
    await db.upgrade(engine)
    sessions = db.session_factory(engine)
    try:
        async with sessions() as session:
            await create_customer(
                session,
                {"name": "华泰贸易", "tier": "key", "phones": ["021 6234 5678"], "notes": "VIP"},
                "CN",
            )
            await session.commit()
        async with sessions() as session:
            caller = await screen_pop(
                session, Identity(phone="+862162345678", verified=True), "CN", {"menu": "billing"}
            )
            assert caller["customer"]["name"] == "华泰贸易"
            assert caller["customer"]["tier"] == "key" and caller["customer"]["notes"] == "VIP"
            assert caller["collected"] == {"menu": "billing"}
            typed = await screen_pop(session, Identity(phone="021-62345678"), "CN")
            assert typed["verified"] is False
            assert typed["customer"]["tier"] is None and typed["customer"]["notes"] == ""
            assert typed["open_tickets"] == [] and typed["history"] == []
            new = await screen_pop(
                session, Identity(email="New@Example.com", name="Newcomer"), "CN"
            )
            assert new["customer"]["name"] == "Newcomer"
            assert new["customer"]["emails"] == [{"email": "new@example.com"}]
            hidden = await screen_pop(session, Identity(phone="anonymous", verified=True), "CN")
            assert hidden["customer"] is None
            await session.commit()
        async with sessions() as session:
            names = sorted(
                c.name for c in (await session.execute(Customer.__table__.select())).all()
            )
        assert names == ["Newcomer", "华泰贸易"]
    finally:
        await engine.dispose()
