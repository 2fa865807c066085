"""Reading, rendering and validating the deploy/ files, offline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from services.classifier.app import build as build_classifier
from services.classifier.review import build as build_urgency_review
from services.dispatch.app import build as build_dispatch
from services.evaluation.app import build as build_evaluation
from services.insight.app import build as build_insight
from services.recorder.app import RecorderSettings
from services.recorder.app import build as build_recorder

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "k8s" / "base"
OVERLAYS = sorted(p.parent for p in (DEPLOY / "k8s" / "overlays").glob("*/kustomization.yaml"))
KUSTOMIZATIONS = [BASE, *OVERLAYS]
# The oldest Kubernetes the manifests support, and the newest the validator knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

Doc = dict[str, Any]

# Each worker as its app builds it (no connection is made): the consumers it declares are the truth the
# manifests and the metrics are checked against.
WORKERS = {
    "classifier": build_classifier,
    "dispatch": build_dispatch,
    "evaluation": build_evaluation,
    "insight": build_insight,
    # Building connects to nothing, but the recorder refuses to be built without a database to name.
    "recorder": lambda: build_recorder(RecorderSettings(DATABASE_URL="postgresql://unused@localhost/none")),
    # A stand-in scorer: the consumers are the same, and the e5 engine is not loaded for a manifest check.
    "urgency-review": lambda: build_urgency_review(scorer=(lambda texts: [0.0] * len(texts), 1.0)),
}
SERVICES = ("intake", *WORKERS, "console")


def consumed_groups(service: str) -> set[tuple[str, str]]:
    worker, _ = WORKERS[service]()
    return {(c.stream, c.group) for c in worker.consumers}


def load_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def kustomization(folder: Path) -> Doc:
    doc: Doc = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    return doc


def base_resources() -> list[Doc]:
    """Every resource the base lists, as written (before kustomize's transformations)."""
    return [doc for name in kustomization(BASE)["resources"] for doc in load_docs(BASE / name)]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def render(folder: Path) -> list[Doc]:
    command = kustomize_command()
    assert command is not None
    out = subprocess.run([*command, str(folder)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


@cache
def crd_schemas() -> dict[str, Doc]:
    """apiVersion/kind -> JSON Schema, from deploy/schemas (see generate.py there for their source)."""
    schemas = {}
    for path in (DEPLOY / "schemas").glob("*.json"):
        group, version, kind = path.stem.split("_")
        schemas[f"{group}/{version}/{kind}"] = json.loads(path.read_text(encoding="utf-8"))
    return schemas


def validation_errors(doc: Doc) -> list[str]:
    """What the API server would refuse in `doc` (strict: unknown fields too); [] when it is valid."""
    key = f"{doc.get('apiVersion')}/{doc.get('kind')}"
    if key in crd_schemas():
        validator = jsonschema.Draft202012Validator(crd_schemas()[key])
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    errors = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"k8s {version}: {'/'.join(map(str, exc.path))}: {exc.message}")
    return errors


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"]["template"]["spec"]
    return spec


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# -- metric names in PromQL ------------------------------------------------------------------------

# Series that a service announced and does not export yet; remove a name once its service exports it
# (tests/deploy/test_prometheus_e2e.py then checks it against the real /metrics).
ANNOUNCED = frozenset(
    {
        "hotline_escalations_total",  # dispatch: tickets escalated past a deadline
        "hotline_hotspots_open",  # insight: hotspots currently open
        "hotline_hotspot_alerts_total",  # insight: hotspot alerts raised
    }
)
_NAME = re.compile(r"\b(hotline_[a-z0-9_]+|up)\b")
_HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def metric_names(expr: str) -> set[str]:
    """The series an expression reads (label values in quotes are not names)."""
    return set(_NAME.findall(re.sub(r'"[^"]*"', '""', expr)))


def family(name: str) -> str:
    """The metric family a series belongs to: histograms expose name_bucket, name_sum, name_count."""
    return _HISTOGRAM_SUFFIX.sub("", name)


def rule_expressions() -> dict[str, str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text(encoding="utf-8"))
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


def dashboard() -> Doc:
    doc: Doc = json.loads((DEPLOY / "grafana" / "hotline.json").read_text(encoding="utf-8"))
    return doc


def dashboard_expressions() -> dict[str, str]:
    return {
        f"{p['title']} [{t['refId']}]": t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])
    }
