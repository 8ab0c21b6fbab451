"""The actor chart as a first-day user writes its values: compact `image: repo:tag`, `env.PYTHONPATH`,
`nonRetryableErrors` — rendered by the pinned helm, wrong input refused with a message naming the key."""

from __future__ import annotations

import pytest
import yaml

from tests.charts import helpers
from tests.support.require import require

CHART = helpers.CHARTS / "asya-actor"
BASE = {"name": "judge", "handler": "judge.Judge.judge", "transport": {"rabbitmq": {"existingSecret": "broker"}}}


def _render(tmp_path, values: dict) -> list[dict]:
    require(helpers.tool("HELM", "helm") is not None, "helm is missing: run `make tools-helm`")
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({**BASE, **values}))
    return helpers.render(CHART, [path])


def _runtime(objects: list[dict]) -> dict:
    return helpers.container(helpers.one(objects, "Deployment"), "asya-runtime")


@pytest.mark.parametrize("image", ["registry.example.com/vision/judge:1.4.0",
                                   "localhost:5000/judge:dev@sha256:" + "0" * 64,
                                   {"repository": "registry.example.com/vision/judge", "tag": "1.4.0"}])
def test_compact_and_object_image_forms_render_the_same_reference(tmp_path, image):
    spec = _runtime(_render(tmp_path, {"image": image}))
    expected = image if isinstance(image, str) else f"{image['repository']}:{image['tag']}"
    assert spec["image"] == expected and spec["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize("image", ["registry.example.com/vision/judge", "judge:has space", ""])
def test_an_image_without_a_pinned_tag_is_refused(tmp_path, image):
    with pytest.raises(helpers.HelmError, match="image"):
        _render(tmp_path, {"image": image})


@pytest.mark.parametrize("env", [{"PYTHONPATH": "/app/src", "X": "1"},
                                 [{"name": "PYTHONPATH", "value": "/app/src"}, {"name": "X", "value": "1"}]])
def test_a_users_pythonpath_is_merged_into_one_entry(tmp_path, env):
    spec = _runtime(_render(tmp_path, {"image": "r/judge:1", "env": env}))
    names = [e["name"] for e in spec["env"]]
    assert names.count("PYTHONPATH") == 1 and "X" in names
    assert helpers.env_of(spec)["PYTHONPATH"]["value"] == "/opt/asya-runtime:/app/src"


def test_a_pythonpath_from_a_secret_is_refused_with_the_reason(tmp_path):
    env = [{"name": "PYTHONPATH", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    with pytest.raises(helpers.HelmError, match="PYTHONPATH must be a plain value"):
        _render(tmp_path, {"image": "r/judge:1", "env": env})


def test_non_retryable_errors_reach_the_sidecar_and_bad_names_are_refused(tmp_path):
    policy = {"policies": {"default": {"nonRetryableErrors": ["ValueError", "mypkg.errors.BadInput"]}}}
    deployment = helpers.one(_render(tmp_path, {"image": "r/judge:1", "resiliency": policy}), "Deployment")
    sidecar = helpers.env_of(helpers.container(deployment, "asya-sidecar"))
    assert sidecar["ASYA_RETRY_NON_RETRYABLE_ERRORS"]["value"] == "ValueError,mypkg.errors.BadInput"
    with pytest.raises(helpers.HelmError, match="nonRetryableErrors"):
        _render(tmp_path, {"image": "r/judge:1",
                           "resiliency": {"policies": {"default": {"nonRetryableErrors": ["not a class"]}}}})
