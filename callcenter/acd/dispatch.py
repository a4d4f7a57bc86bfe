"""Carry the router's store effects out against a live-state store.

:func:`run` hands an event to the router, applies every store-facing effect
(reserve, commit, release, finish) and feeds the store's answers back, until
only effects for the outside world remain (offers to show, withdrawals,
queue-log lines, ended contacts), which it returns in order.

:func:`run_now` does the same with a store that answers at once (the
in-process one) without going through the event loop; the routing engine uses
it whenever its store allows.
"""

from __future__ import annotations

import datetime as dt

from callcenter.acd import events as ev
from callcenter.acd.router import QueueConfigured, Router
from callcenter.state.contract import ImmediateLiveState, LiveState

#: Effects for the outside world only, passed on as they are; most effects
#: are these, so one look-up settles them.
_OUTWARD = frozenset({ev.QueueLog, ev.Offer, ev.StartWrapup, ev.PresenceSet})


async def run(
    router: Router,
    store: LiveState,
    event: ev.Event | QueueConfigured,
    now: dt.datetime,
) -> list[ev.Effect]:
    """Handle ``event`` and everything it sets off; return the outward effects."""
    outward: list[ev.Effect] = []
    # Iterators of the effect lists being carried out, innermost last: a
    # reservation's answer is carried out before the effects after it.
    pending = [iter(router.handle(event, now))]
    while pending:
        for effect in pending[-1]:
            if type(effect) in _OUTWARD:
                outward.append(effect)
                continue
            if isinstance(effect, ev.Reserve):
                ok = await store.reserve(effect)
                answer = ev.ReserveResult(effect.contact_id, effect.agent_id, ok)
                pending.append(iter(router.handle(answer, now)))
                break
            if isinstance(effect, ev.Connect):
                await store.commit(effect.contact_id, effect.agent_id)
            elif isinstance(effect, ev.Withdraw):
                await store.release(effect.contact_id, effect.agent_id)
            elif isinstance(effect, ev.Finish):
                await store.finish(effect.contact_id, effect.agent_id)
            elif isinstance(effect, ev.ContactEnded):
                await store.forget(effect.contact_id)
            outward.append(effect)
        else:
            pending.pop()
    return outward


def run_now(
    router: Router,
    store: ImmediateLiveState,
    event: ev.Event | QueueConfigured,
    now: dt.datetime,
) -> list[ev.Effect]:
    """:func:`run` for a store that answers at once; the same effects, in the same order."""
    outward: list[ev.Effect] = []
    pending = [iter(router.handle(event, now))]
    while pending:
        for effect in pending[-1]:
            if type(effect) in _OUTWARD:
                outward.append(effect)
                continue
            if isinstance(effect, ev.Reserve):
                ok = store.reserve_now(effect)
                answer = ev.ReserveResult(effect.contact_id, effect.agent_id, ok)
                pending.append(iter(router.handle(answer, now)))
                break
            if isinstance(effect, ev.Connect):
                store.commit_now(effect.contact_id, effect.agent_id)
            elif isinstance(effect, ev.Withdraw):
                store.release_now(effect.contact_id, effect.agent_id)
            elif isinstance(effect, ev.Finish):
                store.finish_now(effect.contact_id, effect.agent_id)
            elif isinstance(effect, ev.ContactEnded):
                store.forget_now(effect.contact_id)
            outward.append(effect)
        else:
            pending.pop()
    return outward
