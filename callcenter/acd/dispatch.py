"""Carry the router's store effects out against a live-state store.

:func:`run` hands an event to the router, applies every store-facing effect
(reserve, commit, release, finish) and feeds the store's answers back, until
only effects for the outside world remain (offers to show, withdrawals,
queue-log lines, ended contacts), which it returns in order.
"""

from __future__ import annotations

import datetime as dt

from callcenter.acd import events as ev
from callcenter.acd.router import QueueConfigured, Router
from callcenter.state.contract import LiveState


async def run(
    router: Router,
    store: LiveState,
    event: ev.Event | QueueConfigured,
    now: dt.datetime,
) -> list[ev.Effect]:
    """Handle ``event`` and everything it sets off; return the outward effects."""
    outward: list[ev.Effect] = []
    todo = list(router.handle(event, now))
    while todo:
        effect = todo.pop(0)
        if isinstance(effect, ev.Reserve):
            ok = await store.reserve(effect)
            todo[:0] = router.handle(ev.ReserveResult(effect.contact_id, effect.agent_id, ok), now)
            continue
        if isinstance(effect, ev.Connect):
            await store.commit(effect.contact_id, effect.agent_id)
        elif isinstance(effect, ev.Withdraw):
            await store.release(effect.contact_id, effect.agent_id)
        elif isinstance(effect, ev.Finish):
            await store.finish(effect.contact_id, effect.agent_id)
        elif isinstance(effect, ev.ContactEnded):
            await store.forget(effect.contact_id)
        outward.append(effect)
    return outward
