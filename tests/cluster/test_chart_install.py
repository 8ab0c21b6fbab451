"""Every chart scenario and every team values file installs into a real API server, upgrades and uninstalls.

Scenarios are discovered, not listed: each ``charts/*/ci/*-values.yaml`` and each
``values/teams/<team>/<actor>.yaml`` (layered over the platform files named on its ``# layers:`` line).
Each rendered object is first validated server-side with strict field validation (KEDA's and the
ServiceMonitor's CRD schemas included), then the release is installed, upgraded and uninstalled.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.support.cluster import REPO, ControlPlane

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]


def _chart_scenarios() -> list[tuple[str, Path, list[Path]]]:
    scenarios = []
    for values in sorted(REPO.glob("charts/*/ci/*-values.yaml")):
        chart = values.parent.parent
        scenarios.append((f"{chart.name}/{values.stem}", chart, [values]))
    for values in sorted(REPO.glob("values/teams/*/*.yaml")):
        head = values.read_text().splitlines()[:5]
        layers = next((line.split(":", 1)[1] for line in head if line.startswith("# layers:")), "")
        files = [REPO / p for p in re.split(r"[,\s]+", layers.strip()) if p] + [values]
        scenarios.append((f"team/{values.parent.name}/{values.stem}", REPO / "charts/asya-actor", files))
    return scenarios


SCENARIOS = _chart_scenarios()


def _helm(helm: Path, plane: ControlPlane, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HELM_CACHE_HOME": str(tmp / "cache"), "HELM_CONFIG_HOME": str(tmp / "config"),
           "HELM_DATA_HOME": str(tmp / "data"), "KUBECONFIG": str(plane.kubeconfig)}
    return subprocess.run([str(helm), *args], capture_output=True, text=True, env=env, timeout=180)


def _objects(manifest: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def _exists(plane: ControlPlane, obj: dict, namespace: str) -> bool:
    ns = obj["metadata"].get("namespace", namespace)
    kind = f"{obj['kind']}.{obj['apiVersion'].split('/')[0]}" if "/" in obj["apiVersion"] else obj["kind"]
    proc = plane.kubectl("get", kind, obj["metadata"]["name"], "-n", ns, "--ignore-not-found", "-o", "name",
                         check=False)
    assert proc.returncode == 0, proc.stderr
    return bool(proc.stdout.strip())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_chart_installs_validates_upgrades_and_uninstalls(control_plane, helm, tmp_path, scenario):
    name, chart, values = scenario
    namespace = f"c-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    release = re.sub(r"[^a-z0-9-]", "-", name.split("/")[-1].removesuffix("-values"))[:30].strip("-")
    flags = [f for v in values for f in ("-f", str(v))]
    if yaml.safe_load((chart / "Chart.yaml").read_text()).get("dependencies"):
        # `helm dependency build` writes into the chart: do it on a copy, never in the working tree
        shutil.copytree(chart.parent, tmp_path / "charts", ignore=shutil.ignore_patterns("*.tgz"))
        chart = tmp_path / "charts" / chart.name
        built = _helm(helm, control_plane, tmp_path, "dependency", "build", str(chart))
        assert built.returncode == 0, built.stderr

    rendered = _helm(helm, control_plane, tmp_path, "template", release, str(chart), "-n", namespace, *flags)
    assert rendered.returncode == 0, rendered.stderr
    objects = _objects(rendered.stdout)
    assert objects, f"{name} renders nothing"
    for other in {o["metadata"].get("namespace") for o in objects} - {None, namespace}:
        control_plane.kubectl("create", "namespace", other, check=False)  # e.g. watchNamespaces of the controller

    for ns in {o["metadata"].get("namespace") or namespace for o in objects}:
        group = [o for o in objects if (o["metadata"].get("namespace") or namespace) == ns]
        dry = control_plane.kubectl("apply", "--dry-run=server", "--validate=strict", "-n", ns, "-f", "-",
                                    input=yaml.safe_dump_all(group), check=False)
        assert dry.returncode == 0, f"server-side validation of {name} failed:\n{dry.stderr}"
        assert "Warning" not in dry.stderr, dry.stderr

    installed = _helm(helm, control_plane, tmp_path, "install", release, str(chart), "-n", namespace, *flags)
    assert installed.returncode == 0, installed.stderr
    assert all(_exists(control_plane, o, namespace) for o in objects)

    change = (["--set-string", "podAnnotations.asya\\.sh/upgrade-test=1"]
              if "podAnnotations" in yaml.safe_load((chart / "values.yaml").read_text()) else [])
    upgraded = _helm(helm, control_plane, tmp_path, "upgrade", release, str(chart), "-n", namespace, *flags, *change)
    assert upgraded.returncode == 0, upgraded.stderr
    status = _helm(helm, control_plane, tmp_path, "status", release, "-n", namespace, "-o", "json")
    assert '"status":"deployed"' in status.stdout.replace(" ", "") and '"version":2' in status.stdout.replace(" ", "")

    removed = _helm(helm, control_plane, tmp_path, "uninstall", release, "-n", namespace)
    assert removed.returncode == 0, removed.stderr
    kept = [o for o in objects if (o["metadata"].get("annotations") or {}).get("helm.sh/resource-policy") == "keep"]
    leftovers = [f"{o['kind']}/{o['metadata']['name']}" for o in objects
                 if o not in kept and _exists(control_plane, o, namespace)]
    assert not leftovers, f"uninstall left {leftovers}"
    assert all(_exists(control_plane, o, namespace) for o in kept), "objects marked resource-policy: keep were deleted"


@pytest.mark.parametrize("values", sorted(REPO.glob("charts/asya-controller/ci/*-values.yaml")), ids=lambda p: p.stem)
def test_controller_pod_meets_the_restricted_pod_security_standard(control_plane, helm, tmp_path, values):
    namespace = f"r-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    control_plane.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/warn=restricted")
    rendered = _helm(helm, control_plane, tmp_path, "template", "psa", str(REPO / "charts/asya-controller"),
                     "-n", namespace, "-f", str(values), "--show-only", "templates/deployment.yaml")
    assert rendered.returncode == 0, rendered.stderr
    dry = control_plane.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=rendered.stdout,
                                check=False)
    assert dry.returncode == 0, dry.stderr
    assert "PodSecurity" not in dry.stderr, dry.stderr
