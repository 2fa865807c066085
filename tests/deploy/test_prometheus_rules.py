"""The alert rules: promtool accepts and unit-tests them, each is complete and has its runbook."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.manifests import BASE, DEPLOY, REPO, rule_expressions

PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "rules.yaml"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")


def rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [r for g in groups for r in g["rules"]]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120, cwd=PROMETHEUS)


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    out = promtool("check", "rules", "rules.yaml")
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_each_alert_fires_on_its_situation_and_not_on_its_look_alike() -> None:
    out = promtool("test", "rules", "rules.test.yaml", "rules.week.test.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "rules.test.yaml").read_text()))
    tested |= set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "rules.week.test.yaml").read_text()))
    assert tested == set(rule_expressions()), "every alert needs a promtool test"


def test_every_alert_has_for_severity_summary_and_a_runbook_section() -> None:
    runbooks = (REPO / "docs" / "runbooks.md").read_text(encoding="utf-8")
    sections = {h.lower() for h in re.findall(r"^## (\w+)$", runbooks, flags=re.MULTILINE)}
    alerts = set()
    for rule in rules():
        name = str(rule["alert"])
        alerts.add(name.lower())
        assert rule["for"], name
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name  # type: ignore[index]
        annotations = rule["annotations"]
        assert annotations["summary"], name  # type: ignore[index]
        assert annotations["runbook_url"] == f"docs/runbooks.md#{name.lower()}", name  # type: ignore[index]
    assert sections == alerts, "one runbook section per alert, named after it"


def test_the_prometheus_rule_resource_is_generated_from_the_rule_file() -> None:
    spec = importlib.util.spec_from_file_location("to_k8s", PROMETHEUS / "to_k8s.py")
    assert spec is not None and spec.loader is not None
    to_k8s = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(to_k8s)
    committed = (BASE / "prometheus-rule.yaml").read_text(encoding="utf-8")
    assert committed == to_k8s.render(), "run: python deploy/prometheus/to_k8s.py"
    resource = yaml.safe_load(committed)
    assert resource["spec"]["groups"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
