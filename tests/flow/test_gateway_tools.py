"""The gateway's tools config can name a compiled flow instead of a route."""

from __future__ import annotations

import pytest

from asya_cli.main import main

tools = pytest.importorskip("asya_gateway.tools", reason="the gateway package is not installed")

REVIEW = '''
def review_flow(p):
    p = validate(p)
    if p["confidence"] > 0.9:
        p = store(p)
    else:
        p = human_review(p)
        p = store(p)
    return p
'''


def test_tool_with_flow_starts_on_the_compiled_entry_route(tmp_path):
    (tmp_path / "flow.py").write_text(REVIEW)
    assert main(["flow", "compile", str(tmp_path / "flow.py"), "-o", str(tmp_path / "compiled")]) == 0
    (tmp_path / "tools.yaml").write_text("flowsDir: compiled\ntools:\n  - name: review\n    flow: review_flow\n")
    loaded = tools.load_tools(tmp_path / "tools.yaml")
    assert loaded["review"].route == ["validate", "review-flow-router-1"]


def test_unknown_flow_or_both_route_and_flow_are_refused(tmp_path):
    (tmp_path / "tools.yaml").write_text("tools:\n  - name: review\n    flow: review_flow\n")
    with pytest.raises(tools.ToolsError, match="cannot read compiled flow .*review_flow.routes.json"):
        tools.load_tools(tmp_path / "tools.yaml")
    (tmp_path / "tools.yaml").write_text("tools:\n  - name: review\n    flow: review_flow\n    route: [a]\n")
    with pytest.raises(tools.ToolsError, match="either route or flow"):
        tools.load_tools(tmp_path / "tools.yaml")
