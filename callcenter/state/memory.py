"""The embedded live-state store: one process, plain dictionaries.

Each operation runs without awaiting anything in between, so on one event
loop it is atomic by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callcenter.acd.events import Reserve


@dataclass
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
        load = self._load.setdefault(agent_id, {})
        load[channel] = load.get(channel, 0) + delta
        if load[channel] <= 0:
            del load[channel]

    async def reserve(self, request: Reserve) -> bool:
        contact = self._contacts.setdefault(request.contact_id, _Contact())
        if request.contact_version < contact.version or contact.connected is not None:
            return False
        if request.agent_id in contact.holders:
            return False
        if contact.holders and not (
            request.shared and all(shared for _, shared in contact.holders.values())
        ):
            return False
        if self._load.get(request.agent_id, {}).get(request.channel, 0) >= request.capacity:
            return False
        contact.version = request.contact_version
        contact.holders[request.agent_id] = (request.channel, request.shared)
        self._take(request.agent_id, request.channel, 1)
        return True

    async def commit(self, contact_id: str, agent_id: str) -> list[str] | None:
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

    async def release(self, contact_id: str, agent_id: str) -> bool:
        contact = self._contacts.get(contact_id)
        if contact is None or agent_id not in contact.holders or contact.connected == agent_id:
            return False
        channel, _ = contact.holders.pop(agent_id)
        self._take(agent_id, channel, -1)
        contact.version += 1
        return True

    async def finish(self, contact_id: str, agent_id: str) -> bool:
        contact = self._contacts.get(contact_id)
        if contact is None or contact.connected != agent_id:
            return False
        channel, _ = contact.holders.pop(agent_id)
        self._take(agent_id, channel, -1)
        contact.connected = None
        return True

    async def forget(self, contact_id: str) -> None:
        contact = self._contacts.pop(contact_id, None)
        if contact is None:
            return
        for agent_id, (channel, _) in contact.holders.items():
            self._take(agent_id, channel, -1)

    async def load(self, agent_id: str) -> dict[str, int]:
        return dict(self._load.get(agent_id, {}))
