"""Write the JSON Schemas the tests validate KEDA and Prometheus Operator resources against.

They come from the PyPI packages cloudcoil-models-keda 2.16.1.0 and cloudcoil-models-prometheus-operator
0.80.1.0, pydantic models generated from the projects' own CRDs (KEDA 2.16, Prometheus Operator 0.80).
Those models accept unknown fields; the API server does not (strict field validation), so every object
with declared properties is closed here (`additionalProperties: false`): a misspelt field fails the test.

    pip install cloudcoil-models-keda==2.16.1.0 cloudcoil-models-prometheus-operator==0.80.1.0
    python deploy/schemas/generate.py

Not a project dependency: the schemas are committed, this only regenerates them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloudcoil.models.keda import v1alpha1 as keda
from cloudcoil.models.prometheus_operator import v1 as monitoring

HERE = Path(__file__).resolve().parent
MODELS = {
    "keda.sh/v1alpha1/ScaledObject": keda.ScaledObject,
    "keda.sh/v1alpha1/TriggerAuthentication": keda.TriggerAuthentication,
    "monitoring.coreos.com/v1/PodMonitor": monitoring.PodMonitor,
    "monitoring.coreos.com/v1/ServiceMonitor": monitoring.ServiceMonitor,
    "monitoring.coreos.com/v1/PrometheusRule": monitoring.PrometheusRule,
}


def close(node: Any) -> Any:
    """Drop pydantic's titles and defaults; forbid properties a schema does not declare."""
    if isinstance(node, list):
        return [close(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("title", "default"):
            continue
        if key in ("properties", "$defs"):
            out[key] = {name: close(sub) for name, sub in value.items()}
        else:
            out[key] = close(value)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def main() -> None:
    for name, model in MODELS.items():
        schema = close(model.model_json_schema(by_alias=True, mode="validation"))
        schema["$comment"] = f"{name}, from {model.__module__} (see generate.py)"
        path = HERE / (name.replace("/", "_") + ".json")
        path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {path.name}")


if __name__ == "__main__":
    main()
