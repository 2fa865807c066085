"""The Grafana dashboard: well-formed, every panel on the Prometheus data source variable with PromQL.

That each expression names real metrics is checked against the running services in
tests/deploy/test_prometheus_e2e.py.
"""

from __future__ import annotations

from tests.deploy.manifests import dashboard, dashboard_expressions, metric_names


def test_panels_are_laid_out_with_unique_ids_and_query_prometheus() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    (variable,) = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"] == panel["datasource"], panel["title"]


def test_the_dashboard_shows_the_loop() -> None:
    used = set().union(*(metric_names(e) for e in dashboard_expressions().values()))
    assert {
        "hotline_intake_tickets_accepted_total",
        "hotline_events_processed_total",
        "hotline_stage_latency_seconds_bucket",
        "hotline_stream_lag_entries",
        "hotline_dlq_length_entries",
        "hotline_evaluation_rate",
        "hotline_hotspots_open",
    } <= used


def test_the_dashboard_shows_the_record_in_postgresql() -> None:
    expressions = dashboard_expressions().values()
    assert any('group="recorder"' in e and "hotline_stream_lag_entries" in e for e in expressions)
    assert any("hotline_database_up" in e for e in expressions)
    assert any("last_available_backup_timestamp" in e for e in expressions)
