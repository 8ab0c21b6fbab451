"""The crew chart: happy-end and error-end are ordinary actors sharing one status store on a claim."""

from __future__ import annotations

from tests.charts.helpers import by_kind, container, env_of, one

STATUS_DB = "/var/lib/asya/status/status.sqlite3"


def crew(rendered, scenario_id):
    objects = rendered(scenario_id)
    deployments = {d["metadata"]["labels"]["asya.sh/actor"]: d for d in by_kind(objects, "Deployment")}
    return objects, deployments


def claim_of(deployment) -> str:
    pod = deployment["spec"]["template"]["spec"]
    runtime = container(deployment, "asya-runtime")
    mounts = {m["mountPath"]: m["name"] for m in runtime["volumeMounts"]}
    volume = {v["name"]: v for v in pod["volumes"]}[mounts["/var/lib/asya/status"]]
    return volume["persistentVolumeClaim"]["claimName"]


def test_crew_runs_happy_end_and_error_end_on_the_runtime_in_envelope_mode(rendered):
    _, deployments = crew(rendered, "asya-crew/ci/rabbitmq-values.yaml")
    assert set(deployments) == {"happy-end", "error-end"}
    for actor, handler in (("happy-end", "happy_end"), ("error-end", "error_end")):
        runtime = env_of(container(deployments[actor], "asya-runtime"))
        assert runtime["ASYA_HANDLER"]["value"] == f"asya_crew.handlers.{handler}"
        assert runtime["ASYA_HANDLER_MODE"]["value"] == "envelope"
        assert runtime["ASYA_STATUS_DB"]["value"] == STATUS_DB
        assert deployments[actor]["metadata"]["annotations"]["asya.sh/queue"] == f"asya-{actor}"


def test_both_crew_actors_share_the_created_claim_on_one_node(rendered):
    objects, deployments = crew(rendered, "asya-crew/ci/rabbitmq-values.yaml")
    pvc = one(objects, "PersistentVolumeClaim")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    for deployment in deployments.values():
        assert claim_of(deployment) == pvc["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        term = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert all(labels[k] == v for k, v in term["labelSelector"]["matchLabels"].items()), \
            "each crew pod must match its own affinity term, or the first one could never schedule"


def test_an_existing_claim_is_used_and_none_created(rendered):
    objects, deployments = crew(rendered, "asya-crew/ci/sqs-existing-claim-values.yaml")
    assert not by_kind(objects, "PersistentVolumeClaim")
    assert {claim_of(d) for d in deployments.values()} == {"asya-gateway-status"}


POSTGRES = "asya-crew/ci/postgres-values.yaml"


def test_postgres_option_takes_the_url_from_the_secret_and_needs_no_volume(rendered):
    objects, deployments = crew(rendered, POSTGRES)
    assert not by_kind(objects, "PersistentVolumeClaim")
    for deployment in deployments.values():
        runtime = env_of(container(deployment, "asya-runtime"))
        assert runtime["ASYA_STATUS_DB"] == {"name": "ASYA_STATUS_DB", "valueFrom": {
            "secretKeyRef": {"name": "asya-status-db", "key": "url"}}}
        pod = deployment["spec"]["template"]["spec"]
        assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
        assert not pod.get("affinity", {}).get("podAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")


def test_postgres_option_refuses_a_leftover_claim_or_another_secret(built_charts):
    from tests.charts import helpers

    chart = built_charts / "asya-crew"
    values = [chart / "ci/postgres-values.yaml"]
    import pytest

    with pytest.raises(helpers.HelmError, match="still mounts a claim"):
        helpers.render(chart, values, sets=["happy-end.crewStatusStore.mountPath=/var/lib/asya/status"])
    with pytest.raises(helpers.HelmError, match="must come from secretKeyRef other-db/url"):
        helpers.render(chart, values, sets=["statusStore.postgres.existingSecret=other-db"])
