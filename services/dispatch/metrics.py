"""Dispatch's own metrics. Labels are bounded: urgency class, deadline kind, outcome, department id
(from the routing table, a few dozen at most)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class DispatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.escalations = Counter(
            "hotline_escalations",
            "Tickets escalated because a deadline passed "
            "(kind: dispatch = not accepted in time, feedback = not resolved in time)",
            ["kind", "urgency"],
            registry=registry,
        )
        self.assignments = Counter(
            "hotline_dispatch_assignments",
            "Tickets dispatched, by how (first, redispatch after a rejection, reopened, coordinator)",
            ["how"],
            registry=registry,
        )
        self.routing_reloads = Counter(
            "hotline_routing_reloads",
            "Routing table reloads after the file changed (outcome: ok, invalid = kept the old table)",
            ["outcome"],
            registry=registry,
        )
        self.deliveries = Counter(
            "hotline_outbound_deliveries",
            "Webhook delivery attempts to departments, by outcome (delivered, retry, dead_letter)",
            ["department", "outcome"],
            registry=registry,
        )
