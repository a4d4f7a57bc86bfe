"""An open contact-center server: telephony, routing and ticketing in one asyncio program."""

__version__ = "0.1.0"
