"""The alerts shipped in the controller chart, checked and unit-tested by the real promtool.

The chart is rendered with the pinned helm, the PrometheusRule validated against the Prometheus
Operator's CRD, its rule groups written to a file and given to ``promtool check rules`` and to
``promtool test rules`` (tests/observability/alerts_test.yaml: every alert fires on a synthetic series
and stays quiet on a healthy one). Each alert must have a runbook section in docs/operations.md.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.charts import helpers
from tests.support.require import require

HERE = Path(__file__).resolve().parent
OPERATIONS = helpers.REPO / "docs" / "operations.md"
ALERTS = {"AsyaDLQGrowing", "AsyaErrorEndRate", "AsyaRuntimeCrashLooping", "AsyaOldestMessageAge",
          "AsyaControllerDrift"}


@pytest.fixture(scope="module")
def promtool() -> str:
    binary = shutil.which("promtool")
    require(binary is not None, "promtool missing: Debian package `prometheus` (ci/system-packages.txt)")
    return binary


@pytest.fixture(scope="module")
def rule() -> dict:
    require(helpers.tool("HELM", "helm") is not None, "helm is missing: run `make tools-helm`")
    objects = helpers.render(helpers.CHARTS / "asya-controller",
                             [helpers.CHARTS / "asya-controller" / "ci" / "rabbitmq-values.yaml"],
                             sets=["prometheusRule.enabled=true", "prometheusRule.labels.release=kube-prometheus"])
    return helpers.one(objects, "PrometheusRule")


def _rules_file(rule: dict, folder: Path) -> Path:
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def test_rule_is_off_by_default_and_valid_against_the_crd(rule):
    default = helpers.render(helpers.CHARTS / "asya-controller",
                             [helpers.CHARTS / "asya-controller" / "ci" / "rabbitmq-values.yaml"])
    assert not helpers.by_kind(default, "PrometheusRule")
    crd = helpers.crd_dirs()[1] / "monitoring.coreos.com_prometheusrules.yaml"
    require(crd.is_file(), f"{crd} missing: run `make crds`")
    assert helpers.validate_object(rule).startswith("prometheus-operator")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus"
    names = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert names == ALERTS


def test_promtool_checks_the_rules(rule, promtool, tmp_path):
    proc = subprocess.run([promtool, "check", "rules", str(_rules_file(rule, tmp_path))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in proc.stdout


def test_every_alert_fires_on_a_synthetic_series_and_stays_quiet_on_a_healthy_one(rule, promtool, tmp_path):
    # Annotations are checked below; promtool compares them verbatim, so the unit tests see labels only.
    rule = copy.deepcopy(rule)
    groups = rule["spec"]["groups"]
    for group in groups:
        for item in group["rules"]:
            item.pop("annotations", None)
    _rules_file(rule, tmp_path)
    tests = yaml.safe_load((HERE / "alerts_test.yaml").read_text())
    tested = {case["alertname"] for t in tests["tests"] for case in t["alert_rule_test"]}
    assert tested == ALERTS
    fires = {case["alertname"] for t in tests["tests"] for case in t["alert_rule_test"] if case["exp_alerts"]}
    assert fires == ALERTS, "every alert needs a case where it fires"
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    proc = subprocess.run([promtool, "test", "rules", "alerts_test.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_a_broken_expectation_makes_promtool_fail(rule, promtool, tmp_path):
    """The unit tests can fail: a healthy series expected to fire is reported."""
    rule = copy.deepcopy(rule)
    for group in rule["spec"]["groups"]:
        for item in group["rules"]:
            item.pop("annotations", None)
    _rules_file(rule, tmp_path)
    tests = yaml.safe_load((HERE / "alerts_test.yaml").read_text())
    healthy = next(t for t in tests["tests"] if t["name"].startswith("DLQ healthy"))
    healthy["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {"severity": "warning", "actor": "judge",
                                                                   "queue": "asya-judge-dlq"}}]
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump({**tests, "tests": [healthy]}))
    proc = subprocess.run([promtool, "test", "rules", "broken.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "AsyaDLQGrowing" in proc.stdout + proc.stderr


def test_every_alert_has_a_runbook_section_and_annotations(rule):
    text = OPERATIONS.read_text()
    anchors = {re.sub(r"[^a-z0-9-]", "", line.lstrip("#").strip().lower().replace(" ", "-"))
               for line in text.splitlines() if line.startswith("#")}
    for group in rule["spec"]["groups"]:
        for item in group["rules"]:
            annotations = item["annotations"]
            assert annotations["summary"] and annotations["description"]
            anchor = annotations["runbook_url"].rsplit("#", 1)[1]
            assert anchor == item["alert"].lower()
            assert anchor in anchors, f"docs/operations.md has no section for {item['alert']}"
