"""The gateway chart: secrets only by reference, restricted pods, probes, tools the gateway itself accepts."""

from __future__ import annotations

import json

import pytest

from asya_gateway.tools import parse_tools
from tests.charts import helpers
from tests.charts.helpers import by_kind, container, env_of, one

RABBITMQ = "asya-gateway/ci/rabbitmq-values.yaml"
SQS = "asya-gateway/ci/sqs-values.yaml"


def gateway(rendered, scenario):
    objects = rendered(scenario)
    return objects, one(objects, "Deployment")


def test_urls_and_keys_come_only_from_existing_secrets(rendered):
    _, deployment = gateway(rendered, RABBITMQ)
    env = env_of(container(deployment, "gateway"))
    assert env["ASYA_STATUS_DB"]["valueFrom"]["secretKeyRef"] == {"name": "asya-status-db", "key": "url"}
    assert env["ASYA_RABBITMQ_URL"]["valueFrom"]["secretKeyRef"]["name"] == "rabbitmq-asya"
    assert all("value" not in var for name, var in env.items() if name in ("ASYA_STATUS_DB", "ASYA_RABBITMQ_URL"))
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == "asya-gateway-keys"
    assert env["ASYA_GATEWAY_API_KEYS"]["value"] == "/etc/asya/api-keys"
    _, sqs = gateway(rendered, SQS)
    sqs_env = env_of(container(sqs, "gateway"))
    assert sqs_env["ASYA_STATUS_DB"]["valueFrom"]["secretKeyRef"] == {"name": "asya-status-db", "key": "postgres-url"}
    assert {"key": "api-keys.yaml", "path": "keys.yaml"} in \
        {v["name"]: v for v in sqs["spec"]["template"]["spec"]["volumes"]}["api-keys"]["secret"]["items"]


def test_pods_meet_the_restricted_pod_security_standard(rendered):
    _, deployment = gateway(rendered, RABBITMQ)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container(deployment, "gateway")["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_probes_service_and_pdb_point_at_the_gateway(rendered):
    objects, deployment = gateway(rendered, RABBITMQ)
    gw = container(deployment, "gateway")
    assert gw["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert gw["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert env_of(gw)["ASYA_GATEWAY_HOST"]["value"] == "0.0.0.0"
    assert env_of(gw)["ASYA_GATEWAY_PORT"]["value"] == str(gw["ports"][0]["containerPort"])
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    pdb = one(objects, "PodDisruptionBudget")
    assert all(labels[k] == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    sqs_objects, _ = gateway(rendered, SQS)
    assert not by_kind(sqs_objects, "PodDisruptionBudget")


def test_the_tools_config_map_is_what_the_gateway_loads(rendered):
    objects, deployment = gateway(rendered, RABBITMQ)
    config_map = one(objects, "ConfigMap")
    tools = parse_tools(json.loads(config_map["data"]["tools.json"]), "ConfigMap")
    assert set(tools) == {"classify-digit", "summarize"}
    assert tools["classify-digit"].route == ["validate", "classify", "judge"]
    assert tools["classify-digit"].timeout_seconds == 120 and tools["summarize"].cancel_on_disconnect
    mounts = {m["name"]: m["mountPath"] for m in container(deployment, "gateway")["volumeMounts"]}
    assert env_of(container(deployment, "gateway"))["ASYA_GATEWAY_TOOLS"]["value"] == mounts["tools"] + "/tools.json"


def test_changing_the_tools_rolls_the_pods(built_charts):
    chart = built_charts / "asya-gateway"
    values = [chart / "ci/rabbitmq-values.yaml"]
    before = one(helpers.render(chart, values), "Deployment")
    after = one(helpers.render(chart, values, sets=["tools[1].description=changed"]), "Deployment")
    key = "checksum/tools"
    assert before["spec"]["template"]["metadata"]["annotations"][key] != \
        after["spec"]["template"]["metadata"]["annotations"][key]


@pytest.mark.parametrize("sets, message", [
    (["apiKeys.existingSecret="], "apiKeys.existingSecret is required"),
    (["statusStore.existingSecret="], "statusStore.existingSecret is required"),
    (["tools[0].routes={a}"], "additional properties 'routes' not allowed"),
    (["replicas=3"], "additional properties 'replicas' not allowed"),
    (["tools[0].route={happy-end}"], "tools/0/route/0"),
])
def test_bad_values_fail_the_render_with_a_clear_message(built_charts, sets, message):
    chart = built_charts / "asya-gateway"
    with pytest.raises(helpers.HelmError, match=None) as caught:
        helpers.render(chart, [chart / "ci/rabbitmq-values.yaml"], sets=sets)
    assert message in str(caught.value)
