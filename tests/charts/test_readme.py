"""The chart READMEs list every value with its default, generated from values.yaml, and never go stale."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.charts import chart_readme
from tests.charts.helpers import CHARTS

OUR_CHARTS = ["asya-actor", "asya-crew", "asya-gateway"]


@pytest.mark.parametrize("chart", OUR_CHARTS)
def test_readme_matches_values_yaml(chart):
    readme = (CHARTS / chart / "README.md").read_text()
    assert readme == chart_readme.render_readme(CHARTS / chart), \
        f"charts/{chart}/README.md is stale: run `make charts-readme`"


@pytest.mark.parametrize("chart", OUR_CHARTS)
def test_every_value_is_documented(chart):
    values = yaml.safe_load((CHARTS / chart / "values.yaml").read_text())
    documented = {item.path for item in chart_readme.documented_keys(CHARTS / chart / "values.yaml")}
    undocumented = [".".join(leaf) for leaf in chart_readme.leaves(values)
                    if not any(leaf[:i] in documented for i in range(1, len(leaf) + 1))]
    assert not undocumented, f"values without a '# --' comment: {undocumented}"


@pytest.mark.parametrize("chart", OUR_CHARTS)
def test_every_documented_key_is_in_the_schema(chart):
    """values.yaml, the README and values.schema.json describe the same keys."""
    schema = json.loads((CHARTS / chart / "values.schema.json").read_text())
    for item in chart_readme.documented_keys(CHARTS / chart / "values.yaml"):
        node = schema
        for key in item.path:
            while "$ref" in node:
                node = schema["definitions"][node["$ref"].rsplit("/", 1)[-1]]
            assert key in node.get("properties", {}), f"{item.key} is documented but not in values.schema.json"
            node = node["properties"][key]


def test_the_generator_reads_descriptions_and_defaults(tmp_path):
    (tmp_path / "values.yaml").write_text(
        "# file header, not documentation\n\n"
        "# -- Top level\n# continued.\ntop: 1\nnested:\n  # -- Inner key\n  inner: [a, b]\n"
        "list:\n  - name: x\n    # -- not a values key\n    ignored: 1\n"
    )
    (tmp_path / "README.md.gotmpl").write_text("# t\n{{ values_table }}\n")
    text = chart_readme.render_readme(tmp_path)
    assert "| `top` | int | `1` | Top level continued. |" in text
    assert '| `nested.inner` | list | `["a", "b"]` | Inner key |' in text
    assert "ignored" not in text
