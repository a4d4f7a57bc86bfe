"""Prometheus metrics of one server (a registry of its own, not the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "callcenter_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "callcenter_http_request_seconds",
            "HTTP request duration",
            ["route"],
            registry=self.registry,
        )
        self.login_failures = Counter(
            "callcenter_login_failures", "Refused logins", ["reason"], registry=self.registry
        )
        self.spool_backlog = Gauge(
            "callcenter_spool_backlog",
            "Records on disk waiting for the database",
            registry=self.registry,
        )
        self.spool_rejected = Gauge(
            "callcenter_spool_rejected",
            "Records refused at apply time since start",
            registry=self.registry,
        )
        self.database_up = Gauge(
            "callcenter_database_up", "1 while the database answers", registry=self.registry
        )
        self.consoles = Gauge(
            "callcenter_consoles", "Open agent and supervisor consoles", registry=self.registry
        )
