"""Durable storage: the data model, repositories, migrations and the spool."""
