"""Live state shared by routers: reservations of contacts and agent slots.

The router decides; a store applies its decisions as compare-and-set
operations, so that no contact is offered to two agents by mistake and no
agent holds more contacts of a channel than its capacity, even with several
nodes deciding at once. ``memory`` is the embedded store; every store passes
the same contract tests.
"""
