"""Service tickets: the lifecycle and the SLA clock (pure, no I/O)."""
