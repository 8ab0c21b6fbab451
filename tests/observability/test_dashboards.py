"""The Grafana dashboards shipped with the charts show only metrics the code exports, in valid PromQL.

Metric names are collected from the real registries (a sidecar's and the controller's ``/metrics``
exposition) and compared with every name in the dashboards' and alerts' expressions. The only other
allowed source is kube-state-metrics' container restart counter (listed in docs/operations.md).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

from tests.charts import helpers
from tests.support.require import require

ACTOR_JSON = helpers.CHARTS / "asya-actor" / "dashboards" / "asya-actor.json"
MESH_JSON = helpers.CHARTS / "asya-controller" / "dashboards" / "asya-mesh.json"
EXTERNAL = {"kube_pod_container_status_restarts_total"}  # kube-state-metrics
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
             "inf", "nan"}
_SUFFIXES = {"counter": ("",), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "gauge": ("",), "summary": ("", "_sum", "_count", "_created")}


def exported_names(exposition: str) -> set[str]:
    """Sample names of every family in a Prometheus text exposition (even families with no sample yet)."""
    names = set()
    for line in exposition.splitlines():
        match = re.match(r"# TYPE (\S+) (\S+)", line)
        if match:
            # prometheus_client names a counter's family with its ``_total`` sample name already.
            names |= {match.group(1) + suffix for suffix in _SUFFIXES.get(match.group(2), ("",))}
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names used in a PromQL expression (label matchers, ranges, grouping and functions removed)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b\d+(\.\d+)?([eE][+-]?\d+)?\b", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or match.group(0).lower() in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names


def dashboard_exprs(board: dict) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


@pytest.fixture(scope="module")
def code_metrics(tmp_path_factory) -> set[str]:
    """What a real sidecar and the controller expose on /metrics."""
    from prometheus_client import CollectorRegistry

    from asya_common.transport import TransportSettings
    from asya_sidecar.app import Sidecar
    from asya_sidecar.settings import RetryPolicy, SidecarSettings

    folder = tmp_path_factory.mktemp("metrics")
    registry = CollectorRegistry()
    Sidecar(SidecarSettings(actor="judge", socket_path=str(folder / "s.sock")), RetryPolicy(),
            TransportSettings(sqlite_path=str(folder / "q.sqlite3")), registry=registry)
    names = exported_names(generate_latest(registry).decode())
    import asya_controller.metrics  # noqa: F401 - registers the controller's metrics in the default registry

    names |= {n for n in exported_names(generate_latest(REGISTRY).decode()) if n.startswith("asya_")}
    return names


def test_committed_dashboards_are_what_the_generator_writes():
    proc = subprocess.run([sys.executable, str(helpers.REPO / "ci" / "gen_dashboards.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_parser_finds_metric_names():
    assert metric_names('histogram_quantile(0.99, sum by (le, actor) (rate(a_bucket{x="y{"}[5m]))) / b > 1e-9') == \
        {"a_bucket", "b"}


@pytest.mark.parametrize("path", [ACTOR_JSON, MESH_JSON], ids=["actor", "mesh"])
def test_dashboards_reference_only_exported_metrics(path, code_metrics):
    board = json.loads(path.read_text())
    used = set().union(*(metric_names(e) for e in dashboard_exprs(board)))
    assert used, "no metric found: the parser is broken"
    unknown = used - code_metrics - EXTERNAL
    assert not unknown, f"{path.name} uses metrics nothing exports: {sorted(unknown)}"
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for needed in ("throughput", "p50 / p99", "errors by type", "retries", "dlq depth", "dlq oldest",
                   "queue depth vs replicas", "runtime restarts"):
        assert needed in titles, f"{path.name} lacks a {needed!r} panel"


def test_alert_rules_reference_only_exported_metrics(code_metrics):
    require(helpers.tool("HELM", "helm") is not None, "helm is missing: run `make tools-helm`")
    objects = helpers.render(helpers.CHARTS / "asya-controller",
                             [helpers.CHARTS / "asya-controller" / "ci" / "rabbitmq-values.yaml"],
                             sets=["prometheusRule.enabled=true"])
    rule = helpers.one(objects, "PrometheusRule")
    used = set().union(*(metric_names(r["expr"]) for g in rule["spec"]["groups"] for r in g["rules"]))
    assert not used - code_metrics - EXTERNAL, sorted(used - code_metrics - EXTERNAL)


def test_every_dashboard_expression_is_valid_promql(tmp_path):
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool missing: Debian package `prometheus` (ci/system-packages.txt)")
    exprs = dashboard_exprs(json.loads(ACTOR_JSON.read_text())) + dashboard_exprs(json.loads(MESH_JSON.read_text()))
    rules = [{"record": f"asya:dashboard_check_{i}", "expr": e.replace("$__rate_interval", "5m")}
             for i, e in enumerate(exprs)]
    path = tmp_path / "exprs.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_charts_ship_the_dashboards_for_the_grafana_sidecar():
    require(helpers.tool("HELM", "helm") is not None, "helm is missing: run `make tools-helm`")
    actor_values = helpers.CHARTS / "asya-actor" / "ci" / "rabbitmq-values.yaml"
    assert not helpers.by_kind(helpers.render(helpers.CHARTS / "asya-actor", [actor_values]), "ConfigMap")
    objects = helpers.render(helpers.CHARTS / "asya-actor", [actor_values],
                             sets=["grafanaDashboard.enabled=true", "grafanaDashboard.annotations.grafana_folder=Asya"])
    config = helpers.one(objects, "ConfigMap")
    helpers.validate_object(config)
    name = yaml.safe_load(actor_values.read_text())["name"]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["metadata"]["annotations"] == {"grafana_folder": "Asya"}
    board = json.loads(config["data"][f"asya-actor-{name}.json"])
    assert board["title"] == f"Asya actor {name}" and len(board["uid"]) <= 40
    assert all(f'actor="{name}"' in e for e in dashboard_exprs(board) if "asya_" in e)
    assert "__ACTOR" not in json.dumps(board)

    controller_values = helpers.CHARTS / "asya-controller" / "ci" / "rabbitmq-values.yaml"
    assert not helpers.by_kind(helpers.render(helpers.CHARTS / "asya-controller", [controller_values]), "ConfigMap")
    objects = helpers.render(helpers.CHARTS / "asya-controller", [controller_values],
                             sets=["grafanaDashboards.enabled=true"])
    config = helpers.one(objects, "ConfigMap")
    helpers.validate_object(config)
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"]["asya-mesh.json"])["uid"] == "asya-mesh"
