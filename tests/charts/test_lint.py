"""`helm lint --strict` and chart-testing's `ct lint` (yamllint, Chart.yaml schema, every ci values file).

ct runs on a copy of the repository's charts/ and ci/ inside a fresh git repository: ct insists on a git
work tree, and `helm dependency build` must not write vendored charts into the real one.
"""

from __future__ import annotations

import os
import sys
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.charts import helpers, scenarios
from tests.support.require import require

CHARTS = sorted(p.name for p in helpers.CHARTS.iterdir() if (p / "Chart.yaml").is_file())
CI_SCENARIOS = scenarios.ci_scenarios()


@pytest.mark.parametrize("scenario", CI_SCENARIOS, ids=[s.id for s in CI_SCENARIOS])
def test_helm_lint_strict(scenario, built_charts):
    out = helpers.helm("lint", "--strict", str(built_charts / scenario.chart), "-f", str(scenario.values[0]),
                       "--kube-version", helpers.KUBERNETES_VERSION)
    assert "0 chart(s) failed" in out, out


@pytest.fixture(scope="module")
def ct_workdir(tmp_path_factory, helm_bin) -> Path:
    work = tmp_path_factory.mktemp("ct")
    shutil.copytree(helpers.CHARTS, work / "charts", ignore=shutil.ignore_patterns("*.tgz"))
    shutil.copytree(helpers.REPO / "ci", work / "ci")
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    return work


@pytest.mark.parametrize("chart", CHARTS)
def test_ct_lint(chart, ct_workdir):
    ct = helpers.tool("CT", "ct")
    require(ct is not None, "ct is missing: run `make tools-ct`")
    venv_bin = Path(sys.executable).parent
    require(shutil.which("yamllint", path=str(venv_bin)) is not None, "yamllint missing from the venv (make venv)")
    env = dict(os.environ, PATH=os.pathsep.join([str(venv_bin), str(Path(helpers.tool("HELM", "helm")).parent),
                                                 os.environ.get("PATH", "")]))
    proc = subprocess.run([ct, "lint", "--config", "ci/ct.yaml", "--charts", f"charts/{chart}"], cwd=ct_workdir,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "All charts linted successfully" in proc.stdout + proc.stderr


def test_values_and_flux_files_pass_yamllint():
    """The platform, team and Flux files follow the same YAML rules ct applies to the charts."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(helpers.REPO / "ci" / "lintconf.yaml"))
    problems = []
    for path in sorted(helpers.VALUES.rglob("*.yaml")):
        for problem in linter.run(path.read_text(), config, str(path)):
            if problem.level == "error":
                problems.append(f"{path.relative_to(helpers.REPO)}:{problem.line}: {problem.desc}")
    assert not problems, "\n".join(problems)
