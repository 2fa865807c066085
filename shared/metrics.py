"""Prometheus metrics shared by the workers.

Labels are bounded (service, stream, outcome, reason): never a ticket id or a caller number.
Each service builds its own registry, so several apps can live in one test process.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# The `_created` series double every counter for no use on dashboards or alerts.
disable_created_metrics()  # type: ignore[no-untyped-call]

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.events = Counter(
            "hotline_events_processed",
            "Stream entries handled, by outcome (ok, retry, dead_letter)",
            ["service", "stream", "outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "hotline_dead_letters",
            "Entries moved to a dead-letter stream, by reason",
            ["service", "stream", "reason"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "hotline_batch_duration_seconds",
            "Time to handle one batch, from read to commit",
            ["service", "stream"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "hotline_batch_size",
            "Entries per batch",
            ["service", "stream"],
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=registry,
        )
        self.claimed = Counter(
            "hotline_claimed_entries",
            "Pending entries taken over from another consumer by the claimer",
            ["service", "stream"],
            registry=registry,
        )
        self.lag = Gauge(
            "hotline_stream_lag_entries",
            "Entries in the stream not yet delivered to the group",
            ["service", "stream", "group"],
            registry=registry,
        )
        self.pending = Gauge(
            "hotline_stream_pending_entries",
            "Entries delivered to the group and not yet acknowledged",
            ["service", "stream", "group"],
            registry=registry,
        )
        self.oldest_pending = Gauge(
            "hotline_stream_oldest_pending_age_seconds",
            "Age of the oldest unacknowledged entry of the group",
            ["service", "stream", "group"],
            registry=registry,
        )
        self.length = Gauge(
            "hotline_stream_length_entries",
            "Entries in the stream (compare with the MAXLEN it is trimmed to)",
            ["service", "stream"],
            registry=registry,
        )
        self.maxlen = Gauge(
            "hotline_stream_maxlen_entries",
            "The hard cap the stream is trimmed to on append; a group lagging this far loses entries",
            ["service", "stream"],
            registry=registry,
        )
        self.dlq_length = Gauge(
            "hotline_dlq_length_entries",
            "Entries waiting in the stream's dead-letter stream",
            ["service", "stream"],
            registry=registry,
        )
        self.stage_latency = Histogram(
            "hotline_stage_latency_seconds",
            "Time from the ticket's receipt at intake to this stage's commit",
            ["service", "stream"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.started = Gauge(
            "hotline_process_start_time_seconds", "When this worker started", ["service"], registry=registry
        )
        self.started.labels(service).set(time.time())
