"""Fixtures of the chart tests: the pinned tools (required under CI=true) and a built copy of the charts.

The charts are copied to a temporary folder before ``helm dependency build`` so that the crew chart's
vendored dependency never lands in the working tree.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.charts import helpers
from tests.support.require import require


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """Path of the pinned helm (``make tools-helm``)."""
    binary = helpers.tool("HELM", "helm")
    require(binary is not None, "helm is missing: run `make tools-helm`")
    return binary


@pytest.fixture(scope="session")
def crds_ready() -> None:
    """Fails (CI) or skips (laptop) when the pinned CRDs were not fetched (``make crds``)."""
    missing = [str(d) for d in helpers.crd_dirs() if not any(d.glob("*.yaml"))]
    require(not missing, f"CRD schemas missing in {missing}: run `make crds`")


@pytest.fixture(scope="session")
def built_charts(helm_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of charts/ with every chart's dependencies built; returns the copied charts folder."""
    root = tmp_path_factory.mktemp("charts") / "charts"
    shutil.copytree(helpers.CHARTS, root, ignore=shutil.ignore_patterns("*.tgz"))
    for chart in sorted(root.iterdir()):
        if (chart / "Chart.yaml").is_file() and "dependencies:" in (chart / "Chart.yaml").read_text():
            helpers.helm("dependency", "build", str(chart))
    return root


@pytest.fixture(scope="session")
def rendered(built_charts: Path):
    """``rendered(scenario_id)`` -> rendered objects, each scenario rendered once per session."""
    from tests.charts import scenarios

    by_id = {s.id: s for s in scenarios.all_scenarios()}
    cache: dict[str, list[dict]] = {}

    def get(scenario_id: str) -> list[dict]:
        if scenario_id not in cache:
            s = by_id[scenario_id]
            cache[scenario_id] = helpers.render(built_charts / s.chart, s.values, s.release, s.sets)
        return cache[scenario_id]

    return get
