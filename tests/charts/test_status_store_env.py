"""asya-actor chart: the sidecar reaches the status store only through a Secret reference (ASYA_STATUS_DB)."""

from __future__ import annotations

import pytest

from tests.charts import helpers
from tests.charts.helpers import HelmError, by_kind, container, env_of
from tests.charts.scenarios import all_scenarios

BASE = next(s for s in all_scenarios() if s.chart == "asya-actor" and s.id.startswith("examples/"))


def sidecar_env(built_charts, *sets: str) -> dict:
    objects = helpers.render(built_charts / "asya-actor", BASE.values, sets=(*BASE.sets, *sets))
    [deployment] = by_kind(objects, "Deployment")
    return env_of(container(deployment, "asya-sidecar"))


def test_status_store_url_comes_from_a_secret_key_ref(built_charts):
    env = sidecar_env(built_charts, "statusStore.existingSecret=asya-status-db", "statusStore.urlKey=dsn")
    assert env["ASYA_STATUS_DB"] == {"name": "ASYA_STATUS_DB",
                                     "valueFrom": {"secretKeyRef": {"name": "asya-status-db", "key": "dsn"}}}
    assert "value" not in env["ASYA_STATUS_DB"]  # never the URL itself


def test_no_status_store_by_default(built_charts):
    assert "ASYA_STATUS_DB" not in sidecar_env(built_charts)


def test_a_url_in_place_of_a_secret_name_is_refused(built_charts):
    with pytest.raises(HelmError, match="statusStore.existingSecret"):
        sidecar_env(built_charts, "statusStore.existingSecret=postgresql://u:p@db/asya")
