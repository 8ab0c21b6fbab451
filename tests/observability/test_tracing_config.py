"""Turning tracing on from the chart values and from ``asya dev`` gives the sidecar the same ``OTEL_*`` env."""

from __future__ import annotations

import pytest
import yaml

from asya_cli.values import ValuesError, load_actor
from tests.charts import helpers
from tests.support.require import require

ACTOR_VALUES = helpers.CHARTS / "asya-actor" / "ci" / "rabbitmq-values.yaml"
TRACING = ["tracing.enabled=true", "tracing.endpoint=http://otel-collector.observability:4318",
           "tracing.sampler=parentbased_traceidratio", "tracing.samplerArg=0.25", "tracing.headersSecret=otel-auth"]


def _sidecar_env(sets=()):
    require(helpers.tool("HELM", "helm") is not None, "helm is missing: run `make tools-helm`")
    objects = helpers.render(helpers.CHARTS / "asya-actor", [ACTOR_VALUES], sets=sets)
    deployment = helpers.one(objects, "Deployment")
    helpers.validate_object(deployment)
    return helpers.env_of(helpers.container(deployment, "asya-sidecar")), deployment


def test_chart_tracing_is_off_by_default():
    env, deployment = _sidecar_env()
    assert not [name for name in env if name.startswith("OTEL_")]
    runtime = helpers.env_of(helpers.container(deployment, "asya-runtime"))
    assert not [name for name in runtime if name.startswith("OTEL_")]


def test_chart_and_asya_dev_set_the_same_otel_env(tmp_path):
    env, deployment = _sidecar_env(TRACING)
    name = yaml.safe_load(ACTOR_VALUES.read_text())["name"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability:4318"
    assert env["OTEL_SERVICE_NAME"]["value"] == name
    assert env["OTEL_TRACES_SAMPLER_ARG"]["value"] == "0.25"
    # The exporter's headers (API keys) come from a Secret, never from values.
    assert env["OTEL_EXPORTER_OTLP_HEADERS"]["valueFrom"]["secretKeyRef"] == {"name": "otel-auth", "key": "headers"}
    # The runtime (user image, stdlib only) gets no OTel configuration: it reads trace ids from the envelope.
    runtime = helpers.env_of(helpers.container(deployment, "asya-runtime"))
    assert not [n for n in runtime if n.startswith("OTEL_")]

    values = tmp_path / "actor.yaml"
    values.write_text(yaml.safe_dump({"name": name, "handler": "m.f", "tracing": {
        "enabled": True, "endpoint": "http://otel-collector.observability:4318",
        "sampler": "parentbased_traceidratio", "samplerArg": "0.25"}}))
    dev = load_actor(values).sidecar_env
    chart = {k: v["value"] for k, v in env.items() if k.startswith("OTEL_") and "value" in v}
    assert {k: v for k, v in dev.items() if k.startswith("OTEL_")} == chart


def test_enabled_tracing_without_an_endpoint_is_refused(tmp_path):
    require(helpers.tool("HELM", "helm") is not None, "helm is missing: run `make tools-helm`")
    with pytest.raises(helpers.HelmError, match="tracing.endpoint is required"):
        helpers.render(helpers.CHARTS / "asya-actor", [ACTOR_VALUES], sets=["tracing.enabled=true"])
    values = tmp_path / "actor.yaml"
    values.write_text(yaml.safe_dump({"name": "a", "handler": "m.f", "tracing": {"enabled": True}}))
    with pytest.raises(ValuesError, match="tracing.endpoint is required"):
        load_actor(values)
    values.write_text(yaml.safe_dump({"name": "a", "handler": "m.f", "tracing": {"enabled": True, "endpont": "x"}}))
    with pytest.raises(ValuesError, match="endpont"):
        load_actor(values)


def test_controller_chart_tracing_env():
    require(helpers.tool("HELM", "helm") is not None, "helm is missing: run `make tools-helm`")
    values = helpers.CHARTS / "asya-controller" / "ci" / "rabbitmq-values.yaml"
    objects = helpers.render(helpers.CHARTS / "asya-controller", [values],
                             sets=["tracing.enabled=true", "tracing.endpoint=http://c:4318"])
    deployment = helpers.one(objects, "Deployment")
    helpers.validate_object(deployment)
    env = helpers.env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://c:4318"
    assert env["OTEL_SERVICE_NAME"]["value"] == "asya-controller"
