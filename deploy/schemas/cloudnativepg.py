"""Write the JSON Schemas the tests validate the CloudNativePG resources against (no package ships them).

Written by us from the CloudNativePG 1.27 API reference (postgresql.cnpg.io/v1: Cluster, Pooler,
ScheduledBackup) and the Barman Cloud Plugin 0.6 one (barmancloud.cnpg.io/v1: ObjectStore). Each
schema covers the fields an operator of Hotline is likely to set, with their types and enums, and is
closed (`additionalProperties: false`) where it declares properties, as the API server's strict field
validation is: a misspelt or misplaced field fails the test. A field the API has and this subset lacks
fails too; add it here (with its type from the reference) and re-run:

    python deploy/schemas/cloudnativepg.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
BOOLEAN: Schema = {"type": "boolean"}
INTEGER: Schema = {"type": "integer"}
ANY_OBJECT: Schema = {"type": "object"}  # a Kubernetes core type (affinity, pod template...): not re-checked
STRING_MAP: Schema = {"type": "object", "additionalProperties": STRING}
QUANTITY: Schema = {"anyOf": [STRING, INTEGER]}


def closed(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


LOCAL_REF = closed(("name",), name=STRING)
SECRET_KEY_REF = closed(("name", "key"), name=STRING, key=STRING)
METADATA = closed(
    ("name",),
    name=STRING,
    namespace=STRING,
    labels=STRING_MAP,
    annotations=STRING_MAP,
)
RESOURCES = closed(
    limits={"type": "object", "additionalProperties": QUANTITY},
    requests={"type": "object", "additionalProperties": QUANTITY},
)
STORAGE = closed(
    size=STRING,
    storageClass=STRING,
    resizeInUseVolumes=BOOLEAN,
    pvcTemplate=ANY_OBJECT,
)
PLUGIN = closed(
    ("name",),
    name=STRING,
    enabled=BOOLEAN,
    isWALArchiver=BOOLEAN,
    parameters=STRING_MAP,
)
MONITORING = closed(
    enablePodMonitor=BOOLEAN,
    customQueriesConfigMap=array(SECRET_KEY_REF),
    customQueriesSecret=array(SECRET_KEY_REF),
    disableDefaultQueries=BOOLEAN,
    podMonitorMetricRelabelings=array(ANY_OBJECT),
    podMonitorRelabelings=array(ANY_OBJECT),
)

CLUSTER_SPEC = closed(
    ("instances",),
    description=STRING,
    instances={"type": "integer", "minimum": 1},
    imageName=STRING,
    imagePullPolicy=enum("Always", "Never", "IfNotPresent"),
    imageCatalogRef=closed(
        ("apiGroup", "kind", "name", "major"), apiGroup=STRING, kind=STRING, name=STRING, major=INTEGER
    ),
    postgresUID=INTEGER,
    postgresGID=INTEGER,
    postgresql=closed(
        parameters=STRING_MAP,
        pg_hba=array(STRING),
        pg_ident=array(STRING),
        shared_preload_libraries=array(STRING),
        enableAlterSystem=BOOLEAN,
        synchronous=closed(
            ("method", "number"),
            method=enum("any", "first"),
            number=INTEGER,
            maxStandbyNamesFromCluster=INTEGER,
            standbyNamesPre=array(STRING),
            standbyNamesPost=array(STRING),
            dataDurability=enum("required", "preferred"),
        ),
    ),
    bootstrap=closed(
        initdb=closed(
            database=STRING,
            owner=STRING,
            secret=LOCAL_REF,
            encoding=STRING,
            localeCollate=STRING,
            localeCType=STRING,
            locale=STRING,
            localeProvider=STRING,
            icuLocale=STRING,
            dataChecksums=BOOLEAN,
            walSegmentSize=INTEGER,
            postInitSQL=array(STRING),
            postInitApplicationSQL=array(STRING),
            postInitTemplateSQL=array(STRING),
            postInitApplicationSQLRefs=ANY_OBJECT,
        ),
        recovery=closed(
            source=STRING,
            database=STRING,
            owner=STRING,
            secret=LOCAL_REF,
            backup=LOCAL_REF,
            recoveryTarget=closed(
                targetTime=STRING,
                targetLSN=STRING,
                targetName=STRING,
                targetXID=STRING,
                targetImmediate=BOOLEAN,
                targetTLI=STRING,
                exclusive=BOOLEAN,
                backupID=STRING,
            ),
        ),
        pg_basebackup=closed(("source",), source=STRING, database=STRING, owner=STRING, secret=LOCAL_REF),
    ),
    externalClusters=array(
        closed(
            ("name",),
            name=STRING,
            connectionParameters=STRING_MAP,
            password=SECRET_KEY_REF,
            plugin=PLUGIN,
            barmanObjectStore=ANY_OBJECT,
        )
    ),
    storage=STORAGE,
    walStorage=STORAGE,
    resources=RESOURCES,
    affinity=closed(
        enablePodAntiAffinity=BOOLEAN,
        topologyKey=STRING,
        podAntiAffinityType=enum("preferred", "required"),
        nodeSelector=STRING_MAP,
        nodeAffinity=ANY_OBJECT,
        tolerations=array(ANY_OBJECT),
        additionalPodAffinity=ANY_OBJECT,
        additionalPodAntiAffinity=ANY_OBJECT,
    ),
    topologySpreadConstraints=array(ANY_OBJECT),
    priorityClassName=STRING,
    primaryUpdateStrategy=enum("unsupervised", "supervised"),
    primaryUpdateMethod=enum("switchover", "restart"),
    minSyncReplicas=INTEGER,
    maxSyncReplicas=INTEGER,
    enablePDB=BOOLEAN,
    enableSuperuserAccess=BOOLEAN,
    superuserSecret=LOCAL_REF,
    startDelay=INTEGER,
    stopDelay=INTEGER,
    smartShutdownTimeout=INTEGER,
    switchoverDelay=INTEGER,
    failoverDelay=INTEGER,
    livenessProbeTimeout=INTEGER,
    logLevel=enum("error", "warning", "info", "debug", "trace"),
    monitoring=MONITORING,
    plugins=array(PLUGIN),
    backup=closed(
        target=enum("primary", "prefer-standby"),
        retentionPolicy=STRING,
        volumeSnapshot=ANY_OBJECT,
        barmanObjectStore=ANY_OBJECT,
    ),
    inheritedMetadata=closed(labels=STRING_MAP, annotations=STRING_MAP),
    managed=closed(roles=array(ANY_OBJECT), services=ANY_OBJECT),
    env=array(ANY_OBJECT),
    envFrom=array(ANY_OBJECT),
    certificates=ANY_OBJECT,
    replica=ANY_OBJECT,
    seccompProfile=ANY_OBJECT,
    serviceAccountTemplate=ANY_OBJECT,
    nodeMaintenanceWindow=closed(inProgress=BOOLEAN, reusePVC=BOOLEAN),
)

POOLER_SPEC = closed(
    ("cluster", "pgbouncer"),
    cluster=LOCAL_REF,
    instances={"type": "integer", "minimum": 0},
    type=enum("rw", "ro", "r"),
    pgbouncer=closed(
        poolMode=enum("session", "transaction"),
        parameters=STRING_MAP,
        pg_hba=array(STRING),
        paused=BOOLEAN,
        authQuery=STRING,
        authQuerySecret=LOCAL_REF,
    ),
    monitoring=closed(
        enablePodMonitor=BOOLEAN,
        podMonitorMetricRelabelings=array(ANY_OBJECT),
        podMonitorRelabelings=array(ANY_OBJECT),
    ),
    deploymentStrategy=ANY_OBJECT,
    serviceTemplate=ANY_OBJECT,
    template=ANY_OBJECT,
)

SCHEDULED_BACKUP_SPEC = closed(
    ("cluster", "schedule"),
    cluster=LOCAL_REF,
    # Six fields: the operator's cron has seconds first (robfig/cron), unlike a CronJob's five.
    schedule={"type": "string", "pattern": r"^\S+( \S+){5}$"},
    backupOwnerReference=enum("none", "self", "cluster"),
    immediate=BOOLEAN,
    suspend=BOOLEAN,
    method=enum("barmanObjectStore", "volumeSnapshot", "plugin"),
    online=BOOLEAN,
    onlineConfiguration=closed(immediateCheckpoint=BOOLEAN, waitForArchive=BOOLEAN),
    pluginConfiguration=closed(("name",), name=STRING, parameters=STRING_MAP),
    target=enum("primary", "prefer-standby"),
)

COMPRESSION = enum("bzip2", "gzip", "lz4", "snappy", "xz", "zstd")
OBJECT_STORE_SPEC = closed(
    ("configuration",),
    configuration=closed(
        ("destinationPath",),
        destinationPath={"type": "string", "minLength": 1},
        endpointURL=STRING,
        endpointCA=SECRET_KEY_REF,
        serverName=STRING,
        s3Credentials=closed(
            accessKeyId=SECRET_KEY_REF,
            secretAccessKey=SECRET_KEY_REF,
            region=SECRET_KEY_REF,
            sessionToken=SECRET_KEY_REF,
            inheritFromIAMRole=BOOLEAN,
        ),
        azureCredentials=ANY_OBJECT,
        googleCredentials=ANY_OBJECT,
        wal=closed(
            compression=COMPRESSION,
            encryption=enum("AES256", "aws:kms"),
            maxParallel=INTEGER,
            archiveAdditionalCommandArgs=array(STRING),
            restoreAdditionalCommandArgs=array(STRING),
        ),
        data=closed(
            compression=COMPRESSION,
            encryption=enum("AES256", "aws:kms"),
            immediateCheckpoint=BOOLEAN,
            jobs=INTEGER,
            additionalCommandArgs=array(STRING),
        ),
        tags=STRING_MAP,
        historyTags=STRING_MAP,
    ),
    retentionPolicy={"type": "string", "pattern": r"^[1-9][0-9]*[dwm]$"},
    instanceSidecarConfiguration=closed(
        env=array(ANY_OBJECT),
        resources=RESOURCES,
        retentionPolicyIntervalSeconds=INTEGER,
    ),
)

RESOURCES_BY_KIND = {
    ("postgresql.cnpg.io", "v1", "Cluster"): CLUSTER_SPEC,
    ("postgresql.cnpg.io", "v1", "Pooler"): POOLER_SPEC,
    ("postgresql.cnpg.io", "v1", "ScheduledBackup"): SCHEDULED_BACKUP_SPEC,
    ("barmancloud.cnpg.io", "v1", "ObjectStore"): OBJECT_STORE_SPEC,
}


def resource(group: str, version: str, kind: str, spec: Schema) -> Schema:
    return {
        "$comment": f"{group}/{version}/{kind}: a subset written by hand (see cloudnativepg.py)",
        **closed(
            ("apiVersion", "kind", "metadata", "spec"),
            apiVersion={"const": f"{group}/{version}"},
            kind={"const": kind},
            metadata=METADATA,
            spec=spec,
        ),
    }


def main() -> None:
    for (group, version, kind), spec in RESOURCES_BY_KIND.items():
        path = HERE / f"{group}_{version}_{kind}.json"
        schema = resource(group, version, kind, spec)
        path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {path.name}")


if __name__ == "__main__":
    main()
