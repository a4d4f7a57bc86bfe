"""Calls through the contact center: SIP registrations, call legs, IVR, queues and bridging."""
