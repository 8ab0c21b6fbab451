"""The Flux example (values/kustomization.yaml + values/flux) builds, validates, and deploys what `helm -f` would.

The pinned kustomize builds it like kustomize-controller does; every object is validated against the
Kubernetes schemas or the pinned Flux CRDs; each HelmRelease's valuesFrom layers are rendered through the
chart in order, exactly as helm-controller merges them.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.charts import helpers
from tests.support.require import require

FLUX = helpers.VALUES / "flux"


@pytest.fixture(scope="module")
def built() -> list[dict]:
    kustomize = helpers.tool("KUSTOMIZE", "kustomize")
    require(kustomize is not None, "kustomize is missing: run `make tools-kustomize`")
    proc = subprocess.run([kustomize, "build", str(helpers.VALUES)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def releases(built):
    return helpers.by_kind(built, "HelmRelease")


def config_map(built, namespace, name):
    found = [o for o in helpers.by_kind(built, "ConfigMap")
             if o["metadata"]["name"] == name and o["metadata"]["namespace"] == namespace]
    assert len(found) == 1, f"ConfigMap {namespace}/{name} missing"
    return found[0]


def test_every_flux_object_is_valid(built, crds_ready):
    bootstrap = [doc for doc in yaml.safe_load_all((FLUX / "asya-actors.yaml").read_text()) if doc]
    for obj in built + bootstrap:
        helpers.validate_object(obj)


def test_the_bootstrap_points_at_this_folder():
    objects = {o["kind"]: o for o in yaml.safe_load_all((FLUX / "asya-actors.yaml").read_text()) if o}
    path = objects["Kustomization"]["spec"]["path"]
    assert (helpers.REPO / path / "kustomization.yaml").is_file()
    assert objects["Kustomization"]["spec"]["sourceRef"]["name"] == objects["GitRepository"]["metadata"]["name"]


def test_every_team_actor_has_exactly_one_release(built):
    deployed = sorted((r["metadata"]["namespace"], r["metadata"]["name"]) for r in releases(built))
    files = sorted((p.parent.name, yaml.safe_load(p.read_text())["name"])
                   for p in (helpers.VALUES / "teams").glob("*/*.yaml"))
    assert deployed == files


def test_releases_ignore_replica_drift_and_use_the_repository_chart(built):
    for release in releases(built):
        spec = release["spec"]
        assert (helpers.REPO / spec["chart"]["spec"]["chart"] / "Chart.yaml").is_file()
        assert spec["driftDetection"]["mode"] == "enabled"
        assert {"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}} in spec["driftDetection"]["ignore"]


def test_config_maps_carry_the_repository_files_unchanged(built):
    for release in releases(built):
        namespace = release["metadata"]["namespace"]
        team_file = helpers.VALUES / "teams" / namespace / f"{release['metadata']['name']}.yaml"
        layers = release["spec"]["valuesFrom"]
        platform = config_map(built, namespace, layers[0]["name"])["data"][layers[0]["valuesKey"]]
        team = config_map(built, namespace, layers[1]["name"])["data"][layers[1]["valuesKey"]]
        assert team == team_file.read_text()
        from tests.charts.scenarios import layers_of
        assert platform == layers_of(team_file)[0].read_text(), \
            f"{namespace}/{release['metadata']['name']}: Flux layers a different platform file than the team file says"


def test_each_release_renders_valid_manifests(built, built_charts, tmp_path, crds_ready):
    for release in releases(built):
        namespace = release["metadata"]["namespace"]
        files = []
        for i, ref in enumerate(release["spec"]["valuesFrom"]):
            path = tmp_path / f"{namespace}-{release['metadata']['name']}-{i}.yaml"
            path.write_text(config_map(built, namespace, ref["name"])["data"][ref["valuesKey"]])
            files.append(path)
        if release["spec"].get("values"):
            path = tmp_path / f"{namespace}-{release['metadata']['name']}-inline.yaml"
            path.write_text(yaml.safe_dump(release["spec"]["values"]))
            files.append(path)
        objects = helpers.render(built_charts / "asya-actor", files, release=release["spec"]["releaseName"])
        for obj in objects:
            helpers.validate_object(obj)
        if release["metadata"]["name"] == "detect":
            assert helpers.one(objects, "ScaledObject")["spec"]["minReplicaCount"] == 1, "inline layer not applied"
