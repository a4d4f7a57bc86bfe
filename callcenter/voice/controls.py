"""Hold, mute and the keypad on a two-party bridge, as the agent's console asks.

The same for every call an agent talks on, inbound or outbound: hold stops
the audio both ways and plays music to the customer; mute stops only what
the customer hears of the agent; the keypad sends RFC 4733 digits (or tones)
to the customer.
"""

from __future__ import annotations

from typing import Any, Protocol

from callcenter.media.bridge import Bridge
from callcenter.media.clock import MediaClock
from callcenter.media.player import Player
from callcenter.media.port import RtpPort

#: The actions :func:`press` carries out.
ACTIONS = ("hold", "resume", "mute", "unmute", "dtmf")


class Controlled(Protocol):
    """A call's state as the console set it; ``player`` plays the music on hold."""

    held: bool
    muted: bool
    player: Player | None


async def press(
    call: Controlled,
    action: str,
    body: dict[str, Any],
    *,
    bridge: Bridge,
    customer: RtpPort,
    agent: RtpPort,
    clock: MediaClock,
    music: bytes,
) -> dict[str, Any]:
    """Carry out one of :data:`ACTIONS`; returns the call's state after it."""
    if action == "dtmf":
        for digit in body.get("digits", ""):
            await customer.send_digit(digit.upper())
    elif action in ("hold", "mute"):
        if action == "hold":
            call.held = True
            bridge.hold(agent)
        else:
            call.muted = True
        if not bridge.is_held(customer):
            bridge.hold(customer)
        if call.held and music and call.player is None:
            call.player = Player(customer, clock, music, loop=True)
            call.player.start()
    elif action in ("resume", "unmute"):
        if action == "resume":
            call.held = False
            if call.player is not None:
                player, call.player = call.player, None
                player.stop()
            if bridge.is_held(agent):
                bridge.resume(agent)
        else:
            call.muted = False
        if not call.held and not call.muted and bridge.is_held(customer):
            bridge.resume(customer)
    return {"held": call.held, "muted": call.muted}
