"""What the asya-actor chart promises, asserted on the parsed manifests of every scenario.

Contract with the controller (docs/configuration.md "Actor Deployment metadata"), env of both containers,
restricted security, KEDA owning the replica count, one trigger per transport counting in-flight messages,
secrets only through secretKeyRef, a grace period that outlasts the actor timeout.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.charts import helpers, scenarios
from tests.charts.helpers import by_kind, container, env_of, one

ACTOR_SCENARIOS = [s for s in scenarios.all_scenarios() if s.chart == "asya-actor"]
# Every scenario that renders actors: asya-actor itself and the crew (two asya-actor subcharts).
ALL_IDS = [s.id for s in scenarios.all_scenarios() if s.chart in ("asya-actor", "asya-crew")]
SOCKET = "/var/run/asya/asya-runtime.sock"
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "": 1}


def seconds(duration) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(ms|s|m|h)?", str(duration)).groups()
    return float(number) * UNITS[unit or ""]


def merged_values(scenario) -> dict:
    """The values Helm sees: chart defaults, then each -f layer (maps merge, everything else replaces)."""

    def merge(base, over):
        if isinstance(base, dict) and isinstance(over, dict):
            out = dict(base)
            for key, value in over.items():
                out[key] = merge(base.get(key), value) if key in base else value
            return out
        return over

    values = yaml.safe_load((helpers.CHARTS / scenario.chart / "values.yaml").read_text())
    for layer in scenario.values:
        values = merge(values, yaml.safe_load(layer.read_text()) or {})
    return values


def deployments_of(rendered, scenario_id):
    return by_kind(rendered(scenario_id), "Deployment")


@pytest.mark.parametrize("scenario_id", ALL_IDS)
def test_every_container_runs_restricted(rendered, scenario_id):
    for deployment in deployments_of(rendered, scenario_id):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for item in pod["containers"] + pod.get("initContainers", []):
            ctx = item["securityContext"]
            assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] > 0, item["name"]
            assert ctx["readOnlyRootFilesystem"] is True, item["name"]
            assert ctx["allowPrivilegeEscalation"] is False, item["name"]
            assert ctx["capabilities"] == {"drop": ["ALL"]}, item["name"]
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, item["name"]
            assert item["resources"].get("limits", {}).get("memory"), f"{item['name']} has no memory limit"


@pytest.mark.parametrize("scenario_id", ALL_IDS)
def test_keda_owns_the_replica_count(rendered, scenario_id):
    objects = rendered(scenario_id)
    scaled = {o["spec"]["scaleTargetRef"]["name"]: o for o in by_kind(objects, "ScaledObject")}
    for deployment in by_kind(objects, "Deployment"):
        name = deployment["metadata"]["name"]
        if name in scaled:
            assert "replicas" not in deployment["spec"], f"{name}: spec.replicas would fight KEDA"
            assert scaled[name]["spec"]["scaleTargetRef"]["kind"] == "Deployment"
            auth = scaled[name]["spec"]["triggers"][0]["authenticationRef"]["name"]
            assert auth in {t["metadata"]["name"] for t in by_kind(objects, "TriggerAuthentication")}
        else:
            assert isinstance(deployment["spec"]["replicas"], int), f"{name}: neither KEDA nor replicas"


@pytest.mark.parametrize("scenario_id", ALL_IDS)
def test_deployment_carries_the_controller_contract(rendered, scenario_id):
    for deployment in deployments_of(rendered, scenario_id):
        meta = deployment["metadata"]
        actor = meta["labels"]["asya.sh/actor"]
        runtime_env = env_of(container(deployment, "asya-sidecar"))
        prefix = runtime_env["ASYA_QUEUE_PREFIX"]["value"]
        assert {k: meta["labels"][k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/component",
                                               "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by")} == {
            "app.kubernetes.io/name": "asya-actor", "app.kubernetes.io/component": "actor",
            "app.kubernetes.io/part-of": "asya", "app.kubernetes.io/managed-by": "Helm"}
        assert meta["labels"]["app.kubernetes.io/instance"]
        notes = meta["annotations"]
        assert notes["asya.sh/transport"] == runtime_env["ASYA_TRANSPORT"]["value"]
        assert notes["asya.sh/queue"] == f"{prefix}{actor}"
        assert notes["asya.sh/dlq"] == f"{prefix}{actor}-dlq"
        assert notes["asya.sh/dlq-max-receive-count"] == runtime_env["ASYA_DLQ_MAX_RECEIVE_COUNT"]["value"]
        assert notes["asya.sh/lease-seconds"] == runtime_env["ASYA_LEASE_SECONDS"]["value"]
        assert notes["asya.sh/queue-deletion"] in {"keep", "delete"}
        assert all(isinstance(v, str) for v in notes.values())
        template_labels = deployment["spec"]["template"]["metadata"]["labels"]
        for key, value in deployment["spec"]["selector"]["matchLabels"].items():
            assert template_labels[key] == value


@pytest.mark.parametrize("scenario", ACTOR_SCENARIOS, ids=[s.id for s in ACTOR_SCENARIOS])
def test_env_matches_the_values(rendered, scenario):
    values = merged_values(scenario)
    deployment = one(rendered(scenario.id), "Deployment")
    runtime = env_of(container(deployment, "asya-runtime"))
    sidecar = env_of(container(deployment, "asya-sidecar"))
    policy = values["resiliency"]["policies"]["default"]
    assert runtime["ASYA_ACTOR_NAME"]["value"] == sidecar["ASYA_ACTOR_NAME"]["value"] == values["name"]
    assert runtime["ASYA_HANDLER"]["value"] == values["handler"]
    assert runtime["ASYA_HANDLER_MODE"]["value"] == values["handlerMode"]
    assert json.loads(runtime["ASYA_HANDLER_ARGS"]["value"]) == values["handlerArgs"]
    assert runtime["ASYA_CONCURRENCY"]["value"] == sidecar["ASYA_CONCURRENCY"]["value"] == str(values["concurrency"])
    assert runtime["ASYA_SOCKET_PATH"]["value"] == sidecar["ASYA_SOCKET_PATH"]["value"] == SOCKET
    assert sidecar["ASYA_ACTOR_TIMEOUT"]["value"] == str(values["resiliency"]["actorTimeout"])
    assert sidecar["ASYA_RETRY_MAX_ATTEMPTS"]["value"] == str(policy["maxAttempts"])
    assert sidecar["ASYA_RETRY_BACKOFF"]["value"] == policy["backoff"]
    assert sidecar["ASYA_RETRY_INITIAL_INTERVAL"]["value"] == str(policy["initialInterval"])
    assert sidecar["ASYA_RETRY_MAX_INTERVAL"]["value"] == str(policy["maxInterval"])
    assert sidecar["ASYA_DLQ_MAX_RECEIVE_COUNT"]["value"] == str(values["resiliency"]["deadLetter"]["maxReceiveCount"])
    assert sidecar["ASYA_TRANSPORT"]["value"] == values["transport"]["type"]
    assert sidecar["ASYA_METRICS_PORT"]["value"] == str(values["sidecar"]["metricsPort"])
    assert sidecar["ASYA_RUNTIME_CONNECT_TIMEOUT"]["value"] == str(values["sidecar"]["runtimeConnectTimeout"])
    user_env = values["env"] or {}
    user_names = list(user_env) if isinstance(user_env, dict) else [item["name"] for item in user_env]
    for name in user_names:
        assert name in runtime, f"user env {name} missing from the handler container"
        assert name not in sidecar, f"user env {name} leaked into the sidecar"


@pytest.mark.parametrize("scenario", ACTOR_SCENARIOS, ids=[s.id for s in ACTOR_SCENARIOS])
def test_grace_period_outlasts_the_actor_timeout(rendered, scenario):
    values = merged_values(scenario)
    deployment = one(rendered(scenario.id), "Deployment")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    shutdown = env_of(container(deployment, "asya-sidecar"))["ASYA_SHUTDOWN_GRACE"]["value"]
    assert grace > seconds(values["resiliency"]["actorTimeout"])
    assert grace > seconds(shutdown) >= seconds(values["resiliency"]["actorTimeout"])


@pytest.mark.parametrize("scenario_id", ALL_IDS)
def test_secrets_only_through_secret_key_refs(rendered, scenario_id):
    objects = rendered(scenario_id)
    assert not by_kind(objects, "Secret"), "the chart must never create a Secret from values"
    secretish = re.compile(r"(URL|KEY|SECRET|PASSWORD|TOKEN)$")
    for deployment in by_kind(objects, "Deployment"):
        for item in deployment["spec"]["template"]["spec"]["containers"]:
            for name, var in env_of(item).items():
                if "value" in var:
                    assert not re.search(r"://[^/@\s]+:[^/@\s]+@", var["value"]), f"{name} carries credentials"
                if name in {"ASYA_RABBITMQ_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} or (
                        secretish.search(name) and name not in {"ASYA_SQS_ENDPOINT_URL"}):
                    assert "secretKeyRef" in var.get("valueFrom", {}), f"{name} must come from a secretKeyRef"
    for auth in by_kind(objects, "TriggerAuthentication"):
        spec = auth["spec"]
        assert set(spec) <= {"secretTargetRef", "podIdentity"}, spec
        assert ("secretTargetRef" in spec) != ("podIdentity" in spec)


@pytest.mark.parametrize("scenario_id", ALL_IDS)
def test_runtime_and_sidecar_share_the_socket_and_the_runtime_is_injected(rendered, scenario_id):
    for deployment in deployments_of(rendered, scenario_id):
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        runtime, sidecar = container(deployment, "asya-runtime"), container(deployment, "asya-sidecar")
        install = container(deployment, "asya-runtime-install")
        for item in (runtime, sidecar):
            mounts = {m["mountPath"]: m["name"] for m in item["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/var/run/asya"]]
        lib = {m["name"]: m["mountPath"] for m in install["volumeMounts"]}
        (lib_volume, lib_path), = lib.items()
        assert "emptyDir" in volumes[lib_volume]
        assert install["command"][0] == "cp" and install["command"][-1].rstrip("/") == lib_path
        assert runtime["command"][1:] == ["-m", "asya_runtime"]
        assert env_of(runtime)["PYTHONPATH"]["value"] == lib_path
        assert {m["name"]: m["mountPath"] for m in runtime["volumeMounts"]}[lib_volume] == lib_path


@pytest.mark.parametrize("scenario_id", ALL_IDS)
def test_probes_hit_the_sidecar_health_endpoint(rendered, scenario_id):
    for deployment in deployments_of(rendered, scenario_id):
        sidecar = container(deployment, "asya-sidecar")
        port = int(env_of(sidecar)["ASYA_METRICS_PORT"]["value"])
        assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in sidecar["ports"]
        for probe in ("startupProbe", "livenessProbe"):
            assert sidecar[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        runtime = container(deployment, "asya-runtime")
        assert SOCKET in runtime["readinessProbe"]["exec"]["command"][-1]
        assert str(port) in runtime["lifecycle"]["preStop"]["exec"]["command"][-1]


def trigger(objects):
    scaled = one(objects, "ScaledObject")
    (item,) = scaled["spec"]["triggers"]
    return scaled, item, one(objects, "TriggerAuthentication")["spec"]


def test_rabbitmq_trigger_counts_unacked_messages_through_the_management_api(rendered):
    objects = rendered("asya-actor/ci/rabbitmq-values.yaml")
    scaled, item, auth = trigger(objects)
    assert item["type"] == "rabbitmq"
    assert item["metadata"] == {"protocol": "http", "mode": "QueueLength", "queueName": "asya-judge",
                                "value": "10", "activationValue": "0"}
    assert auth == {"secretTargetRef": [{"parameter": "host", "name": "rabbitmq-asya", "key": "managementUrl"}]}
    assert scaled["spec"]["minReplicaCount"] == 0 and scaled["spec"]["maxReplicaCount"] == 20
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 120
    sidecar = env_of(container(one(objects, "Deployment"), "asya-sidecar"))
    assert sidecar["ASYA_RABBITMQ_URL"]["valueFrom"]["secretKeyRef"] == {"name": "rabbitmq-asya", "key": "url"}


def test_sqs_trigger_scales_on_in_flight_messages_with_the_workload_identity(rendered):
    objects = rendered("asya-actor/ci/sqs-irsa-values.yaml")
    _, item, auth = trigger(objects)
    assert item["type"] == "aws-sqs-queue"
    assert item["metadata"]["queueURL"] == "https://sqs.eu-west-1.amazonaws.com/123456789012/asya-embed"
    assert item["metadata"]["scaleOnInFlight"] == "true"
    assert item["metadata"]["awsRegion"] == "eu-west-1"
    assert auth == {"podIdentity": {"provider": "aws", "identityOwner": "workload"}}
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/asya-embed"
    sidecar = env_of(container(one(objects, "Deployment"), "asya-sidecar"))
    assert "AWS_ACCESS_KEY_ID" not in sidecar


def test_sqs_with_static_keys_uses_the_existing_secret_everywhere(rendered):
    objects = rendered("asya-actor/ci/sqs-secret-values.yaml")
    _, item, auth = trigger(objects)
    assert item["metadata"]["queueURL"] == "http://elasticmq.asya.svc:9324/000000000000/asya-store"
    assert item["metadata"]["awsEndpoint"] == "http://elasticmq.asya.svc:9324"
    assert {ref["parameter"]: ref["key"] for ref in auth["secretTargetRef"]} == {
        "awsAccessKeyID": "AWS_ACCESS_KEY_ID", "awsSecretAccessKey": "AWS_SECRET_ACCESS_KEY"}
    runtime = env_of(container(one(objects, "Deployment"), "asya-runtime"))
    assert runtime["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "store-db", "key": "password"}


def test_pubsub_trigger_reads_the_subscription_backlog_from_cloud_monitoring(rendered):
    objects = rendered("asya-actor/ci/pubsub-workload-identity-values.yaml")
    _, item, auth = trigger(objects)
    assert item["type"] == "prometheus"
    assert item["metadata"]["serverAddress"] == \
        "https://monitoring.googleapis.com/v1/projects/acme-prod/location/global/prometheus"
    assert 'subscription_id="asya-summarize"' in item["metadata"]["query"]
    assert "subscription_num_undelivered_messages" in item["metadata"]["query"]
    assert auth == {"podIdentity": {"provider": "gcp"}}
    account = one(objects, "ServiceAccount")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].startswith("asya-summarize@")


def test_pubsub_legacy_scaler_and_key_file(rendered):
    objects = rendered("asya-actor/ci/pubsub-legacy-scaler-values.yaml")
    _, item, auth = trigger(objects)
    assert item["type"] == "gcp-pubsub"
    assert item["metadata"]["subscriptionName"] == "projects/acme-dev/subscriptions/asya-translate"
    assert auth["secretTargetRef"][0]["parameter"] == "GoogleApplicationCredentials"
    deployment = one(objects, "Deployment")
    sidecar = container(deployment, "asya-sidecar")
    path = env_of(sidecar)["GOOGLE_APPLICATION_CREDENTIALS"]["value"]
    mounts = {m["mountPath"] for m in sidecar["volumeMounts"]}
    assert path.rsplit("/", 1)[0] in mounts


def test_gpu_actor_requests_the_gpu_and_lands_on_gpu_nodes(rendered):
    deployment = one(rendered("asya-actor/ci/gpu-values.yaml"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    runtime = container(deployment, "asya-runtime")
    assert runtime["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert runtime["resources"]["limits"]["memory"] == "32Gi"
    assert "nvidia.com/gpu" not in container(deployment, "asya-sidecar")["resources"].get("limits", {})
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["priorityClassName"] == "asya-gpu"
    assert pod["terminationGracePeriodSeconds"] == 15 * 60 + 30


def test_scaling_off_runs_fixed_replicas_without_keda(rendered):
    objects = rendered("asya-actor/ci/scaling-off-values.yaml")
    assert {o["kind"] for o in objects} == {"Deployment", "NetworkPolicy"}  # NetworkPolicy: on by default
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["annotations"]["asya.sh/queue-deletion"] == "delete"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "shared-actors"
    assert "prometheus.io/scrape" not in (deployment["spec"]["template"]["metadata"].get("annotations") or {})


def test_metrics_service_and_service_monitor_select_the_actor_pods(rendered):
    objects = rendered("asya-actor/ci/rabbitmq-values.yaml")
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = one(objects, "Service")
    assert all(pod_labels[k] == v for k, v in service["spec"]["selector"].items())
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert all(service["metadata"]["labels"][k] == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    budget = one(objects, "PodDisruptionBudget")
    assert all(pod_labels[k] == v for k, v in budget["spec"]["selector"]["matchLabels"].items())
    assert budget["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("scenario", ACTOR_SCENARIOS, ids=[s.id for s in ACTOR_SCENARIOS])
def test_handler_gets_a_writable_home_unless_the_user_sets_one(rendered, scenario):
    runtime = container(one(rendered(scenario.id), "Deployment"), "asya-runtime")
    homes = [var for var in runtime["env"] if var["name"] == "HOME"]
    assert len(homes) == 1, "HOME must be set exactly once"
    mounts = {m["mountPath"] for m in runtime["volumeMounts"]}
    assert homes[0]["value"] in mounts, "HOME must be a writable mount (the root filesystem is read-only)"


def test_a_user_home_replaces_the_default(built_charts):
    objects = helpers.render(built_charts / "asya-actor", [built_charts / "asya-actor/ci/rabbitmq-values.yaml"],
                             sets=["env.HOME=/models"])
    homes = [v for v in container(one(objects, "Deployment"), "asya-runtime")["env"] if v["name"] == "HOME"]
    assert homes == [{"name": "HOME", "value": "/models"}]
