"""The live-state store contract, which every store (Redis next) must pass unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from callcenter.acd.events import Reserve
from callcenter.state.contract import ImmediateLiveState, LiveState
from callcenter.state.memory import MemoryLiveState


@pytest.fixture(params=["memory"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[LiveState]:
    # A new store joins this list and must pass every test below as it is.
    yield MemoryLiveState()


def voice(contact: str, agent: str, version: int = 0, shared: bool = False) -> Reserve:
    return Reserve(contact, agent, "voice", 1, version, shared)


async def test_a_contact_is_reserved_once(store: LiveState) -> None:
    assert await store.reserve(voice("c1", "a"))
    assert not await store.reserve(voice("c1", "b"))
    assert await store.load("a") == {"voice": 1} and await store.load("b") == {}


async def test_capacity_is_never_exceeded(store: LiveState) -> None:
    assert await store.reserve(Reserve("c1", "a", "chat", 2, 0))
    assert await store.reserve(Reserve("c2", "a", "chat", 2, 0))
    assert not await store.reserve(Reserve("c3", "a", "chat", 2, 0))
    assert await store.load("a") == {"chat": 2}


async def test_a_stale_decision_loses(store: LiveState) -> None:
    assert await store.reserve(voice("c1", "a", version=3))
    assert await store.release("c1", "a")
    # The contact moved on (version 4 after the release): a decision taken on
    # version 3 is refused, one on the current version is not.
    assert not await store.reserve(voice("c1", "b", version=3))
    assert await store.reserve(voice("c1", "b", version=4))


async def test_ring_all_first_commit_wins_and_frees_the_others(store: LiveState) -> None:
    for agent in ("a", "b", "c"):
        assert await store.reserve(voice("c1", agent, shared=True))
    assert not await store.reserve(voice("c1", "d"))  # not shared: refused
    assert await store.commit("c1", "b") == ["a", "c"]
    assert await store.commit("c1", "a") is None
    assert [await store.load(x) for x in ("a", "b", "c")] == [{}, {"voice": 1}, {}]
    assert not await store.release("c1", "b")  # a connection is finished, not released
    assert await store.finish("c1", "b")
    assert await store.load("b") == {}


async def test_forget_frees_every_slot(store: LiveState) -> None:
    assert await store.reserve(voice("c1", "a", shared=True))
    assert await store.reserve(voice("c1", "b", shared=True))
    await store.forget("c1")
    assert await store.load("a") == {} and await store.load("b") == {}
    assert await store.reserve(voice("c2", "a"))


async def test_concurrent_reservations_of_one_agent(store: LiveState) -> None:
    results = await asyncio.gather(*(store.reserve(voice(f"c{n}", "a")) for n in range(20)))
    assert sum(results) == 1
    assert await store.load("a") == {"voice": 1}


def test_the_memory_store_answers_at_once_with_the_same_guarantees() -> None:
    store = MemoryLiveState()
    assert isinstance(store, ImmediateLiveState)
    for agent in ("a", "b"):
        assert store.reserve_now(voice("c1", agent, shared=True))
    assert not store.reserve_now(voice("c2", "a"))  # a's only voice slot is taken
    assert store.commit_now("c1", "a") == ["b"]
    assert not store.release_now("c1", "a")
    assert store.finish_now("c1", "a")
    assert store.reserve_now(voice("c2", "a"))
    store.forget_now("c2")
    assert store.reserve_now(voice("c3", "a"))
