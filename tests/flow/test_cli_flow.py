"""`asya dev flow.py ...` preparation and `asya send --flow` argument handling (no mesh needed)."""

from __future__ import annotations

import argparse
import json

import pytest

from asya_cli.common import CliError
from asya_cli.flow.cli import prepare_dev_flows, route_of
from asya_cli.values import load_actor
from tests.flow.oracle import FLOWS_FILE


def test_dev_compiles_flows_into_the_state_dir_with_valid_values(tmp_path):
    actors = ["inc", "double", "improve", "flaky", "summarize", "store"]
    files = prepare_dev_flows([str(FLOWS_FILE)], actors, tmp_path)
    names = sorted(load_actor(f).name for f in files)  # validated against the actor chart's schema
    assert "fan-in" in names and "branchy-router-1" in names
    fan_in = load_actor(tmp_path / "flows" / "fan-in.yaml")
    assert fan_in.runtime_env["ASYA_STATUS_DB"] == str(tmp_path / "status.sqlite3")
    assert fan_in.runtime_env["ASYA_HANDLER"] == "asya_crew.fanin.fan_in"
    entry = json.loads((tmp_path / "flows" / "guarded.routes.json").read_text())["entry"]
    assert entry == {"route": ["guarded-router-1"]}  # a try at the start: a router arms on_error


def test_dev_refuses_a_flow_whose_actor_has_no_values_file(tmp_path):
    with pytest.raises(CliError, match=r"calls actors with no values file: .*summarize"):
        prepare_dev_flows([str(FLOWS_FILE)], ["inc", "double", "improve", "flaky", "store"], tmp_path)


def test_route_of_reads_the_compiled_entry(tmp_path):
    prepare_dev_flows([str(FLOWS_FILE)], ["inc", "double", "improve", "flaky", "summarize", "store"], tmp_path)
    args = argparse.Namespace(flow="branchy", route=None, state_dir=str(tmp_path))
    assert route_of(args) == ["inc", "branchy-router-1"]
    assert route_of(argparse.Namespace(flow=None, route="a, b", state_dir=str(tmp_path))) == ["a", "b"]
    with pytest.raises(CliError, match="exactly one of --route and --flow"):
        route_of(argparse.Namespace(flow="branchy", route="a", state_dir=str(tmp_path)))
    with pytest.raises(CliError, match="no compiled flow 'missing'.*known flows: branchy"):
        route_of(argparse.Namespace(flow="missing", route=None, state_dir=str(tmp_path)))
