"""Every scenario renders, every rendered object is valid against its real schema, and renders are stable.

Core objects are checked against the strict Kubernetes OpenAPI schemas (unknown fields fail), KEDA and
ServiceMonitor objects against the CRDs of the pinned releases. A render that differs between two runs
would make Flux and `helm diff` report changes that are not there.
"""

from __future__ import annotations

import jsonschema
import kubernetes_validate
import pytest

from tests.charts import helpers, scenarios

SCENARIOS = scenarios.all_scenarios()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario_renders_valid_objects(scenario, built_charts, crds_ready):
    text = helpers.render_text(built_charts / scenario.chart, scenario.values, scenario.release, scenario.sets)
    objects = [doc for doc in helpers.yaml.safe_load_all(text) if doc]
    assert objects, f"{scenario.id} rendered nothing"
    failures = []
    for obj in objects:
        try:
            helpers.validate_object(obj)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError, AssertionError, KeyError) as exc:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")
    assert not failures, "\n".join(failures)
    again = helpers.render_text(built_charts / scenario.chart, scenario.values, scenario.release, scenario.sets)
    assert again == text, f"{scenario.id} renders differently on a second run"


def test_every_team_file_declares_an_existing_platform_layer():
    for path in sorted((helpers.VALUES / "teams").glob("*/*.yaml")):
        for layer in scenarios.layers_of(path):
            assert layer.is_file(), f"{path} layers over missing {layer}"
            assert layer.parent.name == "platform", f"{path}: {layer} is not a platform file"


def test_there_are_at_least_two_teams_and_a_gpu_actor():
    teams = {p.parent.name for p in (helpers.VALUES / "teams").glob("*/*.yaml")}
    assert len(teams) >= 2
    gpu = [p for p in (helpers.VALUES / "teams").glob("*/*.yaml")
           if (helpers.yaml.safe_load(p.read_text()).get("gpu") or {}).get("count", 0) > 0]
    assert gpu, "no team actor requests a GPU"


def test_strict_core_validation_rejects_an_unknown_field(built_charts):
    """Guards the guard: the Kubernetes validation really is strict."""
    deployment = helpers.one(helpers.render(built_charts / "asya-actor",
                                            [built_charts / "asya-actor/ci/rabbitmq-values.yaml"]), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        helpers.validate_object(deployment)


def test_keda_validation_rejects_an_unknown_field_and_a_wrong_type(built_charts, crds_ready):
    """Guards the guard: the converted KEDA CRD schema is closed and typed."""
    objects = helpers.render(built_charts / "asya-actor", [built_charts / "asya-actor/ci/rabbitmq-values.yaml"])
    scaled = helpers.one(objects, "ScaledObject")
    helpers.validate_object(scaled)
    typo = helpers.copy.deepcopy(scaled)
    typo["spec"]["minReplicaCont"] = 0
    with pytest.raises(jsonschema.ValidationError, match="minReplicaCont"):
        helpers.validate_object(typo)
    wrong = helpers.copy.deepcopy(scaled)
    wrong["spec"]["maxReplicaCount"] = "ten"
    with pytest.raises(jsonschema.ValidationError, match="maxReplicaCount"):
        helpers.validate_object(wrong)
