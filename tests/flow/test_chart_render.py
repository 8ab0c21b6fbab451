"""The charts deploy generated routers and the fan-in like any actor: `helm template` of their values files."""

from __future__ import annotations

from asya_cli.flow import compile_file, write_compiled
from tests.charts import helpers
from tests.flow.oracle import FLOWS_FILE
from tests.support.require import require


def test_generated_values_render_with_the_actor_chart(tmp_path):
    require(helpers.tool("HELM", "helm") is not None, "helm is missing: run `make tools-helm`")
    written = write_compiled(compile_file(FLOWS_FILE), tmp_path)
    router = tmp_path / "guarded-router-1.yaml"
    fan_in = tmp_path / "fan-in.yaml"
    assert router in written and fan_in in written
    for values, handler, actor in ((router, "guarded_routers.router_1", "guarded-router-1"),
                                   (fan_in, "asya_crew.fanin.fan_in", "fan-in")):
        chart = helpers.CHARTS / "asya-actor"
        objects = helpers.render(chart, [chart / "ci" / "rabbitmq-values.yaml", values], release=actor)
        deployment = helpers.one(objects, "Deployment")
        env = helpers.env_of(helpers.container(deployment, "asya-runtime"))
        assert env["ASYA_HANDLER"]["value"] == handler
        assert env["ASYA_HANDLER_MODE"]["value"] == "envelope"
        assert deployment["metadata"]["labels"]["asya.sh/actor"] == actor
