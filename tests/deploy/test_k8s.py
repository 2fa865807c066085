"""The Kubernetes manifests: valid against the API's schemas, and holding what running Hotline needs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from services.dispatch.routing import load_routing
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.settings import DATA_DIR, CommonSettings, ProxiedSettings
from shared.taxonomy import load_taxonomy
from tests.deploy.manifests import (
    BASE,
    DEPLOY,
    KUSTOMIZATIONS,
    REPO,
    SERVICES,
    WORKERS,
    Doc,
    base_resources,
    consumed_groups,
    kustomization,
    kustomize_command,
    load_docs,
    matches,
    of_kind,
    pod_spec,
    render,
    validation_errors,
)
from tools.runner import module_of

SECRET_KEYS = {
    "redis-password",
    "webhook-secrets",
    "caller-hash-key",
    "survey-webhook-secrets",
    "twilio-auth-tokens",
    "open311-api-keys",
    "department-tokens",
    "operator-tokens",
    "supervisor-tokens",
    "survey-secret",
    "backup-s3-access-key-id",
    "backup-s3-secret-access-key",
    "console-users",
    "console-session-key",
}
# The Secret CloudNativePG writes for the database's owner (bootstrap.initdb.owner of the Cluster).
DATABASE_SECRET = "hotline-pg-app"


def _deployment(docs: list[Doc], service: str) -> Doc:
    (found,) = [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == f"hotline-{service}"]
    return found


def _containers(docs: list[Doc]) -> list[tuple[str, Doc]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}/{c['name']}", c)
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "Job")
        for c in pod_spec(d).get("initContainers", []) + pod_spec(d)["containers"]
    ]


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_kustomization_names_only_files_that_exist(folder: Any) -> None:
    k = kustomization(folder)
    paths = list(k.get("resources", []))
    paths += [p["path"] for p in k.get("patches", []) if "path" in p]
    paths += [f.split("=")[-1] for g in k.get("configMapGenerator", []) for f in g.get("files", [])]
    assert paths
    for path in paths:
        assert (folder / path).exists(), f"{folder.name}/kustomization.yaml names {path}, which is missing"


def test_base_resources_validate_against_their_schemas() -> None:
    docs = base_resources()
    assert {d["kind"] for d in docs} >= {"Deployment", "ScaledObject", "PodMonitor", "PrometheusRule"}
    for doc in docs:
        assert validation_errors(doc) == [], f"{doc['kind']}/{doc['metadata']['name']}"


def test_the_validation_refuses_a_misspelt_field_and_a_wrong_type() -> None:
    deployment = _deployment(base_resources(), "classifier")
    pod_spec(deployment)["containers"][0]["livenesProbe "] = {}
    assert any("livenesProbe " in e for e in validation_errors(deployment))
    (scaled,) = [
        d for d in of_kind(base_resources(), "ScaledObject") if "classifier" in d["metadata"]["name"]
    ]
    scaled["spec"]["triggers"][0]["metadata"]["lagCount"] = 200  # KEDA wants strings
    assert any("is not of type 'string'" in e for e in validation_errors(scaled))


@pytest.mark.skipif(kustomize_command() is None, reason="neither kustomize nor kubectl is installed")
@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_rendered_kustomization_validates(folder: Any) -> None:
    docs = render(folder)
    for doc in docs:
        assert validation_errors(doc) == [], f"{doc['kind']}/{doc['metadata']['name']}"
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"hotline"}
    # Generated ConfigMaps are renamed with a hash; every reference must follow.
    names = {d["metadata"]["name"] for d in of_kind(docs, "ConfigMap")}
    for where, container in _containers(docs):
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] in names, where
    if folder != BASE:
        images = {c["image"] for _, c in _containers(docs)}
        assert "hotline" not in images, "the overlay must point the image at a registry"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_runs_one_process_with_probes_resources_and_a_grace_period(service: str) -> None:
    deployment = _deployment(base_resources(), service)
    spec = pod_spec(deployment)
    (container,) = spec["containers"]  # one process per pod: /metrics sees the whole worker
    assert container["args"] == [module_of(service)]
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8080}
    graceful = CommonSettings().graceful_timeout
    assert spec["terminationGracePeriodSeconds"] >= graceful + 30
    assert spec["securityContext"]["runAsNonRoot"] is True
    for _, c in _containers([deployment]):
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and c["resources"]["limits"]["memory"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_a_disruption_budget_over_its_pods(service: str) -> None:
    docs = base_resources()
    labels = _deployment(docs, service)["spec"]["template"]["metadata"]["labels"]
    budgets = [
        d
        for d in of_kind(docs, "PodDisruptionBudget")
        if matches(d["spec"]["selector"]["matchLabels"], labels)
    ]
    assert len(budgets) == 1


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_autoscaled_and_leaves_the_replica_count_to_its_autoscaler(service: str) -> None:
    docs = base_resources()
    assert "replicas" not in _deployment(docs, service)["spec"]
    targets = [
        d["spec"]["scaleTargetRef"]["name"]
        for d in docs
        if d["kind"] in ("ScaledObject", "HorizontalPodAutoscaler")
    ]
    assert targets.count(f"hotline-{service}") == 1


@pytest.mark.parametrize("service", WORKERS)
def test_each_worker_scales_on_the_lag_of_every_group_it_reads(service: str) -> None:
    consumed = consumed_groups(service)
    docs = base_resources()
    (scaled,) = [
        d
        for d in of_kind(docs, "ScaledObject")
        if d["spec"]["scaleTargetRef"]["name"] == f"hotline-{service}"
    ]
    triggers = scaled["spec"]["triggers"]
    assert {(t["metadata"]["stream"], t["metadata"]["consumerGroup"]) for t in triggers} == consumed
    auth = {d["metadata"]["name"] for d in of_kind(docs, "TriggerAuthentication")}
    for t in triggers:
        assert t["type"] == "redis-streams"
        # lagCount, not pendingEntriesCount: entries waiting for a retry would keep the replicas up.
        assert int(t["metadata"]["lagCount"]) > 0 and "pendingEntriesCount" not in t["metadata"]
        assert t["authenticationRef"]["name"] in auth
        # KEDA reads the address from the target's first container, here from the hotline-env ConfigMap.
        assert t["metadata"]["addressFromEnv"] == "REDIS_ADDRESS"
        container = pod_spec(_deployment(docs, service))["containers"][0]
        assert {"configMapRef": {"name": "hotline-env"}} in container["envFrom"]
    assert scaled["spec"]["minReplicaCount"] >= 1


def test_redis_address_is_reachable_from_kedas_namespace() -> None:
    (generator,) = [g for g in kustomization(BASE)["configMapGenerator"] if g["name"] == "hotline-env"]
    env = dict(item.split("=", 1) for item in generator["literals"])
    assert re.fullmatch(r"hotline-redis\.hotline\.svc\.cluster\.local:6379", env["REDIS_ADDRESS"])
    assert kustomization(BASE)["namespace"] == "hotline"


def test_workers_create_their_groups_before_reading() -> None:
    docs = base_resources()
    for service in WORKERS:
        (init,) = pod_spec(_deployment(docs, service))["initContainers"]
        assert init["args"] == ["tools.cli", "init"]
    (job,) = of_kind(docs, "Job")
    assert pod_spec(job)["containers"][0]["args"] == ["tools.cli", "init"]


def test_every_module_the_manifests_run_exists() -> None:
    for where, container in _containers(base_resources()):
        if container["image"] != "hotline":
            continue
        module = container["args"][0].replace(".", "/")
        assert (REPO / module / "__main__.py").exists() or (
            (REPO / f"{module}.py").exists() and "__main__" in (REPO / f"{module}.py").read_text()
        ), where


def test_secrets_are_referenced_never_inlined() -> None:
    docs = [
        d
        for folder in KUSTOMIZATIONS
        for name in kustomization(folder).get("resources", [])
        if (folder / name).is_file()
        for d in load_docs(folder / name)
    ]
    assert of_kind(docs, "Secret") == []
    assert all("secretGenerator" not in kustomization(f) for f in KUSTOMIZATIONS)
    used = set()
    for where, container in _containers(docs):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] == DATABASE_SECRET:
                assert ref["key"] == "password", where
            elif ref:
                assert ref["name"] == "hotline-secrets", where
                used.add(ref["key"])
            else:
                assert "SECRET" not in env["name"] and "PASSWORD" not in env["name"], where
    for doc in of_kind(docs, "TriggerAuthentication"):
        used |= {ref["key"] for ref in doc["spec"]["secretTargetRef"]}
    for doc in of_kind(docs, "ObjectStore"):
        credentials = doc["spec"]["configuration"]["s3Credentials"].values()
        assert {ref["name"] for ref in credentials} == {"hotline-secrets"}
        used |= {ref["key"] for ref in credentials}
    assert used == SECRET_KEYS
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for key in SECRET_KEYS:
        assert f"`{key}`" in readme, f"deploy/README.md does not document the secret key {key}"


def test_every_intake_credential_comes_from_the_secret_and_a_missing_one_stops_the_start() -> None:
    (generator,) = [g for g in kustomization(BASE)["configMapGenerator"] if g["name"] == "hotline-env"]
    env = dict(item.split("=", 1) for item in generator["literals"])
    assert env["HOTLINE_REQUIRE_PRODUCTION_CREDENTIALS"] == "true"
    assert env["HOTLINE_PUBLIC_BASE_URL"].startswith("https://")
    (container,) = [
        c for where, c in _containers(base_resources()) if where.startswith("Deployment/hotline-intake/")
    ]
    from_secret = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    # With nothing set, every credential is at its development value: each needs its own Secret key.
    credentials = IntakeSettings().dev_credentials_in_use()
    assert {f"HOTLINE_{name.upper()}" for name in credentials} <= from_secret


def test_intake_trusts_x_forwarded_for_only_from_the_ingress_and_the_ingress_routes_every_public_path() -> (
    None
):
    docs = base_resources()
    (container,) = [c for where, c in _containers(docs) if where.startswith("Deployment/hotline-intake/")]
    env = {e["name"]: e.get("value") for e in container["env"]}
    trusted = IntakeSettings(trusted_proxies=json.loads(env["HOTLINE_TRUSTED_PROXIES"])).trusted_proxies
    assert trusted and "0.0.0.0/0" not in trusted
    (ingress,) = of_kind(docs, "Ingress")
    prefixes = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    internal = ("/metrics", "/livez", "/readyz", "/openapi.json")
    public = [r.path for r in create_app(IntakeSettings()).routes if r.path not in internal]  # type: ignore[attr-defined]
    assert {"/v1/webhooks/telephony", "/open311/v2/requests{fmt:open311_fmt}"} <= set(public)
    assert [p for p in public if not any(p.startswith(f"{prefix}/") for prefix in prefixes)] == []


def test_the_console_reads_the_record_and_trusts_x_forwarded_for_only_from_the_ingress() -> None:
    (container,) = [
        c for where, c in _containers(base_resources()) if where.startswith("Deployment/hotline-console/")
    ]
    env = {e["name"]: e.get("value") for e in container["env"]}
    trusted = ProxiedSettings(trusted_proxies=json.loads(env["HOTLINE_TRUSTED_PROXIES"])).trusted_proxies
    assert trusted and "0.0.0.0/0" not in trusted
    assert env["DATABASE_URL"].startswith("postgresql://")


def test_every_service_reaches_the_record() -> None:
    """Each one reads PostgreSQL: a ticket Redis no longer holds is brought back from it (every worker's
    store), besides intake's Open311 history, evaluation's long windows and the recorder's writes."""
    docs = base_resources()
    for service in SERVICES:
        (container,) = [
            c for where, c in _containers(docs) if where == f"Deployment/hotline-{service}/{service}"
        ]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env.get("DATABASE_URL", "").startswith("postgresql://"), service


def test_monitors_select_every_service_on_its_http_port() -> None:
    docs = base_resources()
    (pod_monitor,) = [d for d in of_kind(docs, "PodMonitor") if d["metadata"]["name"] == "hotline-workers"]
    (service_monitor,) = of_kind(docs, "ServiceMonitor")
    for service in SERVICES:
        labels = _deployment(docs, service)["spec"]["template"]["metadata"]["labels"]
        scraped = matches(pod_monitor["spec"]["selector"]["matchLabels"], labels)
        assert scraped == (service in WORKERS), service
        assert labels["app.kubernetes.io/name"] == f"hotline-{service}"  # the job name the alerts use
    for served in ("intake", "console"):  # the services behind a Service: scraped through it
        (svc,) = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == f"hotline-{served}"]
        assert matches(service_monitor["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
        assert [p["name"] for p in svc["spec"]["ports"]] == [service_monitor["spec"]["endpoints"][0]["port"]]
    assert pod_monitor["spec"]["jobLabel"] == service_monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"


def test_reference_redis_persists_with_aof_and_never_evicts() -> None:
    docs = base_resources()
    (config,) = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == "hotline-redis-config"]
    settings = dict(
        line.split(" ", 1)
        for line in config["data"]["redis.conf"].splitlines()
        if line and not line.startswith("#")
    )
    assert settings["appendonly"] == "yes" and settings["appendfsync"] == "everysec"
    assert settings["maxmemory-policy"] == "noeviction"
    (redis,) = of_kind(docs, "StatefulSet")
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert {"mountPath": "/data", "name": "data"} in pod_spec(redis)["containers"][0]["volumeMounts"]


def test_the_city_configuration_loads_with_the_services_loaders() -> None:
    taxonomy = load_taxonomy(BASE / "city" / "taxonomy.yaml")
    routing = load_routing(BASE / "city" / "routing.yaml")
    assert taxonomy.codes() and routing


def test_the_base_ships_the_same_city_files_as_the_package() -> None:
    """kustomize cannot read files outside its folder, so the base keeps copies: they must not drift."""
    for name in ("taxonomy.yaml", "routing.yaml", "gazetteer.yaml"):
        assert (BASE / "city" / name).read_bytes() == (DATA_DIR / name).read_bytes(), (
            f"re-copy shared/data/{name}"
        )
