"""Every service really running, scraped by a real Prometheus that evaluates the alert rules.

Needs Debian's `prometheus` package (prometheus and promtool); .ci/run installs it when missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.intake.app import IntakeSettings
from tests.deploy.manifests import (
    ANNOUNCED,
    DEPLOY,
    SERVICES,
    WORKERS,
    consumed_groups,
    dashboard_expressions,
    family,
    metric_names,
    rule_expressions,
)
from tools.demo import make_calls, post_calls, wait_dispatched
from tools.embedded import free_port
from tools.runner import Stack

pytestmark = [pytest.mark.redis, pytest.mark.e2e]
TICKETS = 30


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import redis as sync_redis

    sync_redis.Redis.from_url(redis_url).flushdb()
    logs = tmp_path_factory.mktemp("logs")
    with Stack(redis_url=redis_url, log_dir=logs) as running:
        calls = make_calls(TICKETS, seed=11)
        tickets = asyncio.run(
            post_calls(running.url_of("intake"), IntakeSettings().webhook_secrets[0], calls)
        )
        assert len(tickets) == TICKETS
        outcome = asyncio.run(wait_dispatched(redis_url, list(tickets.values()), wait_seconds=60))
        assert outcome.missing == []
        yield running


def scrape(stack: Stack) -> dict[str, str]:
    # Intake mounts /metrics as a sub-app: it redirects to /metrics/, which Prometheus follows too.
    return {
        s: httpx.get(f"{stack.url_of(s)}/metrics", timeout=5, follow_redirects=True).text for s in SERVICES
    }


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_each_services_metrics_pass_promtool(stack: Stack) -> None:
    for service, text in scrape(stack).items():
        assert "hotline_" in text, service
        out = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
        )
        assert (out.returncode, out.stdout + out.stderr) == (0, ""), service


def test_rules_and_dashboard_read_only_metrics_the_services_export(stack: Stack) -> None:
    exported = {
        name for text in scrape(stack).values() for name in re.findall(r"^# TYPE (\w+) ", text, re.MULTILINE)
    }
    used = {
        (where, name)
        for where, expr in {**rule_expressions(), **dashboard_expressions()}.items()
        for name in metric_names(expr)
    }
    unknown = sorted(
        f"{where}: {name}"
        for where, name in used
        if name != "up" and family(name) not in exported and name not in ANNOUNCED
    )
    assert unknown == []


def test_prometheus_scrapes_every_service_and_evaluates_the_rules(stack: Stack, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "rules.yaml")],
        # The job names the PodMonitor and ServiceMonitor give (jobLabel: app.kubernetes.io/name).
        "scrape_configs": [
            {
                "job_name": f"hotline-{s}",
                "static_configs": [{"targets": [f"127.0.0.1:{stack.port_of(s)}"]}],
            }
            for s in SERVICES
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=api, timeout=5) as client:
            _check_series(client, server, stack)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _check_series(client: httpx.Client, server: subprocess.Popen[bytes], stack: Stack) -> None:
    def query(expr: str) -> dict[str, float]:
        body = client.get("/api/v1/query", params={"query": expr}).json()
        assert body["status"] == "success", body
        return {_labels(r["metric"]): float(r["value"][1]) for r in body["data"]["result"]}

    expected_groups = {g for service in WORKERS for g in consumed_groups(service)}
    checks: dict[str, Callable[[], bool]] = {
        "every service up": lambda: (
            query('up{job=~"hotline-.+"}')
            == {f"instance=127.0.0.1:{stack.port_of(s)},job=hotline-{s}": 1.0 for s in SERVICES}
        ),
        "tickets accepted": lambda: query("sum(hotline_intake_tickets_accepted_total)") == {"": TICKETS},
        "webhooks answered 202": lambda: (
            query('sum(hotline_intake_requests_total{route="telephony",status="202"})') == {"": TICKETS}
        ),
        "dispatched": lambda: (
            query('sum(hotline_events_processed_total{service="dispatch",outcome="ok"})') == {"": TICKETS}
        ),
        "no lag on any group": lambda: (
            query("max by (stream, group) (hotline_stream_lag_entries)")
            == {f"group={g},stream={s}": 0.0 for s, g in expected_groups}
        ),
        "dead-letter queues watched": lambda: (
            set(query("max by (stream) (hotline_dlq_length_entries)"))
            == {f"stream={s}" for s, _ in expected_groups}
        ),
        "latency observed": lambda: (
            query('sum(hotline_stage_latency_seconds_count{service="dispatch"})') == {"": TICKETS}
        ),
        "every rule evaluated without error": lambda: _rules_healthy(client),
    }
    deadline = time.monotonic() + 45
    failing = list(checks)
    while failing and time.monotonic() < deadline:
        assert server.poll() is None, "prometheus exited"
        # Until its storage is open Prometheus listens but answers 503 with a plain-text body.
        with contextlib.suppress(httpx.TransportError):
            if client.get("/-/ready").status_code == 200:
                failing = [name for name in failing if not checks[name]()]
        if failing:
            time.sleep(0.5)
    assert failing == []


def _rules_healthy(client: httpx.Client) -> bool:
    body = client.get("/api/v1/rules").json()
    rules = [r for g in body["data"]["groups"] for r in g["rules"]]
    assert len(rules) == len(rule_expressions())
    return all(r["health"] == "ok" for r in rules)


def _labels(metric: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(metric.items()) if k != "__name__")
