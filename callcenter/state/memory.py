"""The embedded live-state store: one process, plain dictionaries.

Each operation runs without awaiting anything in between, so on one event
loop it is atomic by construction. The coroutines of :class:`LiveState` are
there for adapters written against any store; the routing engine uses the
plain calls of :class:`ImmediateLiveState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callcenter.acd.events import Reserve


@dataclass(slots=True)
class _Contact:
    version: int = -1
    #: agent -> (channel, shared)
    holders: dict[str, tuple[str, bool]] = field(default_factory=dict)
    connected: str | None = None


class MemoryLiveState:
    def __init__(self) -> None:
        self._contacts: dict[str, _Contact] = {}
        self._load: dict[str, dict[str, int]] = {}

    def _take(self, agent_id: str, channel: str, delta: int) -> None:
        load = self._load.get(agent_id)
        if load is None:
            load = self._load[agent_id] = {}
        held = load.get(channel, 0) + delta
        if held <= 0:
            load.pop(channel, None)
        else:
            load[channel] = held

    # -- ImmediateLiveState ------------------------------------------------------

    def reserve_now(self, request: Reserve) -> bool:
        contact = self._contacts.get(request.contact_id)
        if contact is None:
            contact = self._contacts[request.contact_id] = _Contact()
        if request.contact_version < contact.version or contact.connected is not None:
            return False
        holders = contact.holders
        if request.agent_id in holders:
            return False
        if holders and not (request.shared and all(shared for _, shared in holders.values())):
            return False
        load = self._load.get(request.agent_id)
        held = 0 if load is None else load.get(request.channel, 0)
        if held >= request.capacity:
            return False
        contact.version = request.contact_version
        holders[request.agent_id] = (request.channel, request.shared)
        self._take(request.agent_id, request.channel, 1)
        return True

    def commit_now(self, contact_id: str, agent_id: str) -> list[str] | None:
        contact = self._contacts.get(contact_id)
        if contact is None or agent_id not in contact.holders or contact.connected is not None:
            return None
        others = sorted(a for a in contact.holders if a != agent_id)
        for other in others:
            channel, _ = contact.holders.pop(other)
            self._take(other, channel, -1)
        contact.connected = agent_id
        contact.version += 1
        return others

    def release_now(self, contact_id: str, agent_id: str) -> bool:
        contact = self._contacts.get(contact_id)
        if contact is None or agent_id not in contact.holders or contact.connected == agent_id:
            return False
        channel, _ = contact.holders.pop(agent_id)
        self._take(agent_id, channel, -1)
        contact.version += 1
        return True

    def finish_now(self, contact_id: str, agent_id: str) -> bool:
        contact = self._contacts.get(contact_id)
        if contact is None or contact.connected != agent_id:
            return False
        channel, _ = contact.holders.pop(agent_id)
        self._take(agent_id, channel, -1)
        contact.connected = None
        return True

    def forget_now(self, contact_id: str) -> None:
        contact = self._contacts.pop(contact_id, None)
        if contact is None:
            return
        for agent_id, (channel, _) in contact.holders.items():
            self._take(agent_id, channel, -1)

    # -- LiveState -------------------------------------------------------------------

    async def reserve(self, request: Reserve) -> bool:
        return self.reserve_now(request)

    async def commit(self, contact_id: str, agent_id: str) -> list[str] | None:
        return self.commit_now(contact_id, agent_id)

    async def release(self, contact_id: str, agent_id: str) -> bool:
        return self.release_now(contact_id, agent_id)

    async def finish(self, contact_id: str, agent_id: str) -> bool:
        return self.finish_now(contact_id, agent_id)

    async def forget(self, contact_id: str) -> None:
        self.forget_now(contact_id)

    async def load(self, agent_id: str) -> dict[str, int]:
        return dict(self._load.get(agent_id, {}))
