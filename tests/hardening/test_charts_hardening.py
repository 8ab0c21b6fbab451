"""Issue 10, item 7: a team's values file is data, never a template; actor pods get a NetworkPolicy.

Before the fix ``extraVolumes`` and ``affinity`` went through ``tpl``: a values file could run template
code (``lookup`` reads any Secret the installer may read) with the installer's rights. Now every
team-supplied value is emitted with ``toYaml`` only, and comes out as the literal text it was.
"""

from __future__ import annotations

import pytest
import yaml

from tests.charts import helpers
from tests.support.require import require

ATTACK_LOOKUP = '{{ (lookup "v1" "Secret" "kube-system" "bootstrap-token").data }}'
ATTACK_RELEASE = "{{ .Release.Name }}-{{ .Values.transport.rabbitmq.existingSecret }}"
ACTOR = ["name=judge", "handler=m.f", "image=registry.example.com/j:1", "transport.rabbitmq.existingSecret=rabbit"]


@pytest.fixture(scope="module")
def helm_ok():
    require(helpers.tool("HELM", "helm") is not None, "helm is not installed (make tools)")


def _render(tmp_path, values: dict, *extra: str) -> list[dict]:
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump(values))
    return helpers.render(helpers.CHARTS / "asya-actor", [path], "attack", list(extra))


def test_template_syntax_and_lookup_in_values_come_out_as_literal_text(helm_ok, tmp_path):
    values = {
        "name": "judge", "handler": "m.f", "image": "registry.example.com/j:1",
        "transport": {"rabbitmq": {"existingSecret": "rabbit"}},
        "extraVolumes": [{"name": "vol-x", "configMap": {"name": ATTACK_LOOKUP}},
                         {"name": "vol-y", "secret": {"secretName": ATTACK_RELEASE}}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": ATTACK_RELEASE, "operator": "In", "values": [ATTACK_LOOKUP]}]}]}}},
        "podAnnotations": {"note": ATTACK_LOOKUP}, "handlerArgs": {"x": ATTACK_RELEASE},
    }
    objects = _render(tmp_path, values)
    helpers.validate_object(helpers.one(objects, "Deployment"))
    spec = helpers.one(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["vol-x"]["configMap"]["name"] == ATTACK_LOOKUP
    assert volumes["vol-y"]["secret"]["secretName"] == ATTACK_RELEASE
    term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"][0] == {"key": ATTACK_RELEASE, "operator": "In", "values": [ATTACK_LOOKUP]}


def test_no_chart_passes_values_through_tpl():
    offenders = [f"{path.relative_to(helpers.REPO)}:{n}" for path in helpers.CHARTS.rglob("templates/*")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if "tpl " in line and not line.strip().startswith(("{{/*", "*/", "#")) and "{{-" in line]
    assert not offenders, offenders


def test_actor_pods_get_a_network_policy_by_default(helm_ok, tmp_path):
    objects = helpers.render(helpers.CHARTS / "asya-actor", [], "np", ACTOR)
    policy = helpers.one(objects, "NetworkPolicy")
    helpers.validate_object(policy)
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]  # metrics only
    ports = sorted(p["port"] for rule in spec["egress"] for p in rule["ports"])
    assert ports == [53, 53, 5671, 5672]  # DNS and the broker, nothing else
    deployment = helpers.one(objects, "Deployment")
    assert spec["podSelector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_network_policy_follows_the_configuration(helm_ok, tmp_path):
    objects = helpers.render(helpers.CHARTS / "asya-actor", [], "np", [
        *ACTOR, "transport.type=sqs", "transport.sqs.region=eu-west-1", "transport.sqs.queueUrl=https://sqs.eu-west-1.amazonaws.com/1/asya-judge", "podIdentity=aws", "tracing.enabled=true",
        "tracing.endpoint=http://otel.observability:4318", "statusStore.existingSecret=store"])
    policy = helpers.one(objects, "NetworkPolicy")
    helpers.validate_object(policy)
    ports = sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"])
    assert ports == [53, 53, 80, 443, 4318, 5432]
    off = helpers.render(helpers.CHARTS / "asya-actor", [], "np", [*ACTOR, "networkPolicy.enabled=false"])
    assert not helpers.by_kind(off, "NetworkPolicy")


def test_controller_is_namespace_scoped_unless_cluster_wide_is_asked_for(helm_ok):
    chart = helpers.CHARTS / "asya-controller"
    default = helpers.render(chart, [], "ctl", ["transport.type=sqs"])
    assert not helpers.by_kind(default, "ClusterRole") and not helpers.by_kind(default, "ClusterRoleBinding")
    assert {r["metadata"]["namespace"] for r in helpers.by_kind(default, "Role")} == {"asya"}  # the release's own
    wide = helpers.render(chart, [], "ctl", ["transport.type=sqs", "clusterWide=true"])
    assert helpers.by_kind(wide, "ClusterRole")


@pytest.mark.parametrize("name", ["judge-dlq"])
def test_the_chart_refuses_an_actor_named_like_a_dlq(helm_ok, name):
    helpers.render(helpers.CHARTS / "asya-actor", [], "n", ACTOR)  # the same values with a good name render
    with pytest.raises(helpers.HelmError, match="/name"):
        helpers.render(helpers.CHARTS / "asya-actor", [], "n", [*ACTOR, f"name={name}"])


@pytest.mark.parametrize("timeout", ["0", "0s", "0ms"])
def test_the_chart_refuses_an_actor_timeout_of_zero(helm_ok, timeout):
    helpers.helm("template", "n", str(helpers.CHARTS / "asya-actor"), *(f"--set={a}" for a in ACTOR),
                 "--set-string=resiliency.actorTimeout=1s")  # a positive timeout renders
    with pytest.raises(helpers.HelmError, match="actorTimeout"):
        helpers.helm("template", "n", str(helpers.CHARTS / "asya-actor"), *(f"--set={a}" for a in ACTOR),
                     f"--set-string=resiliency.actorTimeout={timeout}")
