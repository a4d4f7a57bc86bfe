"""Computer-telephony integration: event feeds to consoles, screen pop, call control."""
