"""charts/asya-pipeline: several actors, the crew and their shared defaults installed from one values file.

Rendered the way `make pipeline-deps && helm install` does it (dependencies vendored by
`helm dependency build`, here into a copy of charts/), checked against the strict Kubernetes and KEDA
schemas and `helm lint --strict`; every actor gets the shared defaults, its own handler, and the route
is written down next to them. `ct lint` runs on it with every other chart (tests/charts/test_lint.py).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.charts import helpers
from tests.support.require import require

PIPELINE = helpers.CHARTS / "asya-pipeline"
ACTORS = {"validate": "validate.validate", "classify": "classify.DigitClassifier.predict",
          "judge": "judge.Judge.judge", "human-review": "review.ReviewDesk.review",
          "store": "store.PredictionStore.store"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    require(helpers.tool("HELM", "helm") is not None, "helm is missing: run `make tools-helm`")
    root = tmp_path_factory.mktemp("charts") / "charts"
    shutil.copytree(helpers.CHARTS, root, ignore=shutil.ignore_patterns("*.tgz", "Chart.lock", ".built"))
    for chart in ("asya-crew", "asya-pipeline"):  # what `make pipeline-deps` runs
        helpers.helm("dependency", "build", str(root / chart))
    return root / "asya-pipeline"


def test_one_release_installs_every_actor_and_the_crew_with_shared_defaults(built):
    objects = helpers.render(built, release="digits")
    deployments = {d["metadata"]["name"]: d for d in helpers.by_kind(objects, "Deployment")}
    assert set(deployments) == {f"digits-{a}" for a in [*ACTORS, "happy-end", "error-end"]}
    for actor, handler in ACTORS.items():
        deployment = deployments[f"digits-{actor}"]
        runtime = helpers.env_of(helpers.container(deployment, "asya-runtime"))
        sidecar = helpers.env_of(helpers.container(deployment, "asya-sidecar"))
        assert runtime["ASYA_HANDLER"]["value"] == handler
        assert helpers.container(deployment, "asya-runtime")["image"] == "registry.example.com/digits:1.0.0"
        assert sidecar["ASYA_TRANSPORT"]["value"] == "rabbitmq"  # shared defaults reached every actor
        assert sidecar["ASYA_RETRY_MAX_ATTEMPTS"]["value"] == "2"
        assert sidecar["ASYA_RETRY_NON_RETRYABLE_ERRORS"]["value"] == "ValueError"
        assert sidecar["ASYA_RABBITMQ_URL"]["valueFrom"]["secretKeyRef"]["name"] == "asya-rabbitmq"
    for crew in ("happy-end", "error-end"):
        sidecar = helpers.env_of(helpers.container(deployments[f"digits-{crew}"], "asya-sidecar"))
        assert sidecar["ASYA_TRANSPORT"]["value"] == "rabbitmq"
    assert helpers.env_of(helpers.container(deployments["digits-judge"], "asya-runtime"))["ASYA_HANDLER_ARGS"][
        "value"] == '{"threshold":0.9}'


def test_every_object_passes_the_strict_schemas(built):
    missing = [str(d) for d in helpers.crd_dirs()[:1] if not any(d.glob("*.yaml"))]
    require(not missing, f"KEDA CRDs missing in {missing}: run `make crds`")
    for obj in helpers.render(built, release="digits"):
        helpers.validate_object(obj)


def test_helm_lint_strict(built):
    out = helpers.helm("lint", "--strict", str(built), "--kube-version", helpers.KUBERNETES_VERSION)
    assert "0 chart(s) failed" in out, out


def test_the_route_is_documented_beside_the_actors_and_make_vendors_the_charts():
    text = (PIPELINE / "values.yaml").read_text()
    assert "route: validate -> classify -> judge -> store" in text
    values = yaml.safe_load(text)
    assert set(ACTORS) <= set(values) and values["judge"]["transport"]["type"] == "rabbitmq"  # anchors merged
    dry = subprocess.run(["make", "-n", "-B", "pipeline-deps"], cwd=helpers.REPO, capture_output=True, text=True,
                         timeout=60)
    assert "dependency build charts/asya-crew" in dry.stdout and "dependency build charts/asya-pipeline" in dry.stdout
