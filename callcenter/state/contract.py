"""What every live-state store guarantees (the contract tests check it).

- ``reserve`` succeeds only if the contact is at (or past) nothing newer than
  the version the router decided on, is not held by another agent (unless
  both reservations are shared, for ring-all), and the agent holds fewer than
  ``capacity`` contacts of the channel. It is atomic: on failure nothing
  changes.
- ``commit`` turns one holder's reservation into the connection and releases
  every other holder at once (ring-all: the first accept wins).
- ``release`` gives one holder's slot back; ``finish`` ends a connection.
- ``forget`` drops what is left of a contact that ended.

A store that answers without I/O (the in-process one) also offers the same
operations as plain calls (:class:`ImmediateLiveState`), so the routing engine
can carry out a decision without a round trip through the event loop; they
keep the same guarantees.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from callcenter.acd.events import Reserve


class LiveState(Protocol):
    async def reserve(self, request: Reserve) -> bool: ...

    async def commit(self, contact_id: str, agent_id: str) -> list[str] | None:
        """The other holders released, or ``None`` if ``agent_id`` held no reservation."""
        ...

    async def release(self, contact_id: str, agent_id: str) -> bool: ...

    async def finish(self, contact_id: str, agent_id: str) -> bool: ...

    async def forget(self, contact_id: str) -> None: ...

    async def load(self, agent_id: str) -> dict[str, int]:
        """Contacts the agent holds, per channel."""
        ...


@runtime_checkable
class ImmediateLiveState(LiveState, Protocol):
    """A store whose operations complete at once: each ``*_now`` is its coroutine's twin."""

    def reserve_now(self, request: Reserve) -> bool: ...

    def commit_now(self, contact_id: str, agent_id: str) -> list[str] | None: ...

    def release_now(self, contact_id: str, agent_id: str) -> bool: ...

    def finish_now(self, contact_id: str, agent_id: str) -> bool: ...

    def forget_now(self, contact_id: str) -> None: ...
