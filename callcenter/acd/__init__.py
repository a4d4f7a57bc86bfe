"""Automatic call distribution: the router, lifecycles, strategies and queue statistics."""
