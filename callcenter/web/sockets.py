"""Open websockets by user, so that logging out (or a disabled account) closes them."""

from __future__ import annotations

from collections import defaultdict

from aiohttp import web

#: Close code for "your session ended" (application range 4000-4999).
CLOSE_SESSION_ENDED = 4001


class SocketHub:
    def __init__(self) -> None:
        self._by_user: dict[int, set[web.WebSocketResponse]] = defaultdict(set)

    def add(self, user_id: int, socket: web.WebSocketResponse) -> None:
        self._by_user[user_id].add(socket)

    def remove(self, user_id: int, socket: web.WebSocketResponse) -> None:
        sockets = self._by_user.get(user_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._by_user[user_id]

    def count(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    async def close_user(self, user_id: int, reason: str) -> None:
        for socket in list(self._by_user.pop(user_id, ())):
            await socket.close(code=CLOSE_SESSION_ENDED, message=reason.encode())

    async def close_all(self, reason: str) -> None:
        for user_id in list(self._by_user):
            await self.close_user(user_id, reason)
