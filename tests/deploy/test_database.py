"""PostgreSQL on Kubernetes: the CloudNativePG cluster, its pooler and backups, and who connects where."""

from __future__ import annotations

import copy
import re

from tests.deploy.manifests import (
    BASE,
    Doc,
    base_resources,
    kustomization,
    of_kind,
    pod_spec,
    validation_errors,
)

BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"


def _one(kind: str) -> Doc:
    (doc,) = of_kind(base_resources(), kind)
    return doc


def _env() -> dict[str, str]:
    (generator,) = [g for g in kustomization(BASE)["configMapGenerator"] if g["name"] == "hotline-env"]
    return dict(item.split("=", 1) for item in generator["literals"])


def _service_address(service: str) -> str:
    return f"{service}.{kustomization(BASE)['namespace']}.svc.cluster.local:5432"


def _database_urls() -> dict[str, str]:
    """container -> the DATABASE_URL it is given, for every container given one."""
    urls = {}
    for doc in base_resources():
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        spec = pod_spec(doc)
        for container in spec.get("initContainers", []) + spec["containers"]:
            for env in container.get("env", []):
                if env["name"] == "DATABASE_URL":
                    urls[f"{doc['metadata']['name']}/{container['name']}"] = env["value"]
    return urls


def test_the_cluster_is_highly_available_and_checksummed() -> None:
    cluster = _one("Cluster")
    spec = cluster["spec"]
    assert spec["instances"] >= 3  # a primary and two replicas: one node can be drained during a failure
    assert spec["affinity"]["enablePodAntiAffinity"] and spec["affinity"]["podAntiAffinityType"] == "required"
    assert spec["bootstrap"]["initdb"]["dataChecksums"] is True
    assert spec["walStorage"]["size"], "WAL on its own volume"
    assert re.fullmatch(r"\S+:\d+(\.\d+)?", spec["imageName"]), "pin the PostgreSQL image's version"


def test_wal_is_archived_and_backed_up_nightly_to_the_object_store() -> None:
    cluster, store, scheduled = _one("Cluster"), _one("ObjectStore"), _one("ScheduledBackup")
    (archiver,) = [p for p in cluster["spec"]["plugins"] if p.get("isWALArchiver")]
    assert archiver["name"] == BARMAN_PLUGIN
    assert archiver["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    assert store["spec"]["configuration"]["destinationPath"].startswith(("s3://", "gs://", "https://"))
    assert store["spec"]["retentionPolicy"]
    assert scheduled["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert scheduled["spec"]["method"] == "plugin"
    assert scheduled["spec"]["pluginConfiguration"]["name"] == BARMAN_PLUGIN
    seconds, minutes, hours, *_ = scheduled["spec"]["schedule"].split()
    assert (seconds, minutes) == ("0", "0") and hours.isdigit(), "once a day, at a fixed hour"


def test_the_pooler_fronts_the_primary_in_transaction_mode_with_prepared_statements() -> None:
    cluster, pooler = _one("Cluster"), _one("Pooler")
    assert pooler["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert pooler["spec"]["type"] == "rw" and pooler["spec"]["instances"] >= 2
    bouncer = pooler["spec"]["pgbouncer"]
    assert bouncer["poolMode"] == "transaction"
    # asyncpg prepares every statement; a transaction pooler that does not track them breaks it.
    assert int(bouncer["parameters"]["max_prepared_statements"]) > 0


def test_services_reach_the_database_through_the_pooler_and_migrations_and_the_recorder_the_primary() -> None:
    cluster, pooler = _one("Cluster"), _one("Pooler")
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    env = _env()
    assert env["DATABASE_ADDRESS"] == _service_address(pooler["metadata"]["name"])
    assert env["DATABASE_PRIMARY_ADDRESS"] == _service_address(f"{cluster['metadata']['name']}-rw")
    urls = _database_urls()
    assert urls.pop("hotline-init/db-upgrade").endswith("@$(DATABASE_PRIMARY_ADDRESS)/" + initdb["database"])
    # Its connections keep session staging tables, which a transaction pooler does not.
    assert urls.pop("hotline-recorder/recorder").endswith("@$(DATABASE_PRIMARY_ADDRESS)/hotline")
    for where, url in urls.items():
        assert url == f"postgresql://{initdb['owner']}:$(DATABASE_PASSWORD)@$(DATABASE_ADDRESS)/hotline", (
            where
        )


def test_the_init_job_migrates_the_schema_before_creating_the_streams() -> None:
    (job,) = of_kind(base_resources(), "Job")
    spec = pod_spec(job)
    assert [c["args"] for c in spec["initContainers"]] == [["tools.cli", "db", "upgrade"]]
    assert [c["args"] for c in spec["containers"]] == [["tools.cli", "init"]]


def test_the_databases_pods_are_scraped() -> None:
    monitors = {d["metadata"]["name"]: d for d in of_kind(base_resources(), "PodMonitor")}
    selector = monitors["hotline-pg"]["spec"]["selector"]["matchLabels"]
    assert selector["cnpg.io/cluster"] == _one("Cluster")["metadata"]["name"]
    selector = monitors["hotline-pg-pooler"]["spec"]["selector"]["matchLabels"]
    assert selector["cnpg.io/poolerName"] == _one("Pooler")["metadata"]["name"]


def test_the_validation_refuses_what_the_operator_would() -> None:
    cluster = copy.deepcopy(_one("Cluster"))
    cluster["spec"]["bootstrap"]["initdb"]["dataChecksum"] = True
    assert any("dataChecksum" in e for e in validation_errors(cluster))
    cluster = copy.deepcopy(_one("Cluster"))
    cluster["spec"]["instances"] = "3"
    assert any("is not of type 'integer'" in e for e in validation_errors(cluster))
    scheduled = copy.deepcopy(_one("ScheduledBackup"))
    scheduled["spec"]["schedule"] = "0 2 * * *"  # a CronJob's five fields: the operator wants six
    assert validation_errors(scheduled)
    pooler = copy.deepcopy(_one("Pooler"))
    pooler["spec"]["pgbouncer"]["poolMode"] = "statement"
    assert validation_errors(pooler)
