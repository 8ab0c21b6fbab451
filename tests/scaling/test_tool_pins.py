"""The KEDA that the scaling tests run is the KEDA whose CRDs the chart tests validate against."""

from __future__ import annotations

import re
import shutil

from tests.support.cluster import REPO, _module_dir
from tests.support.keda import KEDA_TOOLS_VERSION
from tests.support.require import require


def test_keda_binaries_and_crds_pin_the_same_version():
    charts_mk = (REPO / "ci/mk/charts.mk").read_text()
    crds = re.search(r"^KEDA_VERSION \?= (\S+)$", charts_mk, re.M).group(1)
    assert KEDA_TOOLS_VERSION == crds, (
        f"tests/scaling/tools/go.mod builds KEDA {KEDA_TOOLS_VERSION} but ci/mk/charts.mk fetches the CRDs of {crds}")


def test_keda_wrapper_module_keeps_the_replaces_keda_is_built_with():
    """KEDA's own go.mod pins k8s.io, controller-runtime, cel-go and prometheus by replace; ours must match."""
    require(shutil.which("go") is not None, "go is needed to read KEDA's go.mod from the module cache")

    def replaces(text: str) -> dict[str, str]:
        return dict(re.findall(r"^\s+(\S+) => \S+ (\S+)$", text, re.M))

    ours = replaces((REPO / "tests/scaling/tools/go.mod").read_text())
    theirs = replaces((_module_dir("github.com/kedacore/keda/v2", KEDA_TOOLS_VERSION) / "go.mod").read_text())
    assert ours == theirs
