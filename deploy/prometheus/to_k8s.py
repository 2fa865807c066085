"""Write deploy/k8s/base/prometheus-rule.yaml: the groups of rules.yaml wrapped as a PrometheusRule.

    python deploy/prometheus/to_k8s.py

rules.yaml stays the one source (promtool checks it as is); tests/deploy fail if the two differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules.yaml"
TARGET = HERE.parent / "k8s" / "base" / "prometheus-rule.yaml"
HEADER = (
    "# Generated from deploy/prometheus/rules.yaml by deploy/prometheus/to_k8s.py: "
    "edit that file, then rerun.\n"
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL expressions) as literal blocks, as they are written in rules.yaml."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "hotline", "labels": {"app.kubernetes.io/component": "monitoring"}},
        "spec": {"groups": rules["groups"]},
    }


def render() -> str:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    body = yaml.dump(prometheus_rule(rules), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    return HEADER + body


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")
