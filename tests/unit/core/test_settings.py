"""Typed settings from ASYA_* env: parsing, defaults, and errors that name the variable."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from asya_common.settings import Duration, SettingsError, env_field, load_settings, parse_duration, to_env
from asya_sidecar.settings import RetryPolicy, SidecarSettings


@dataclass(frozen=True)
class Example:
    name: str = env_field("ASYA_NAME", required=True)
    count: int = env_field("ASYA_COUNT", default=1)
    ratio: float = env_field("ASYA_RATIO", default=0.5)
    on: bool = env_field("ASYA_ON", default=False)
    args: dict = env_field("ASYA_ARGS", default_factory=dict)
    timeout: Duration = env_field("ASYA_TIMEOUT", default=Duration(5))


def test_values_are_parsed_by_type():
    s = load_settings(Example, {"ASYA_NAME": "x", "ASYA_COUNT": "3", "ASYA_RATIO": "0.25", "ASYA_ON": "yes",
                                "ASYA_ARGS": '{"a": 1}', "ASYA_TIMEOUT": "2m"})
    assert (s.name, s.count, s.ratio, s.on, s.args, s.timeout) == ("x", 3, 0.25, True, {"a": 1}, 120.0)


def test_defaults_apply_when_unset():
    s = load_settings(Example, {"ASYA_NAME": "x"})
    assert (s.count, s.on, s.args, s.timeout) == (1, False, {}, 5.0)


@pytest.mark.parametrize("env, message", [
    ({}, "ASYA_NAME is required"),
    ({"ASYA_NAME": "x", "ASYA_COUNT": "three"}, "ASYA_COUNT='three' is invalid"),
    ({"ASYA_NAME": "x", "ASYA_ON": "maybe"}, "ASYA_ON='maybe' is invalid"),
    ({"ASYA_NAME": "x", "ASYA_ARGS": "[1]"}, "expected a JSON dict"),
    ({"ASYA_NAME": "x", "ASYA_TIMEOUT": "soon"}, "not a duration"),
])
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(Example, env)


@pytest.mark.parametrize("text, seconds", [("30", 30), ("1.5s", 1.5), ("500ms", 0.5), ("2m", 120), ("1h", 3600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_to_env_round_trips():
    s = load_settings(Example, {"ASYA_NAME": "x", "ASYA_ARGS": '{"a": [1]}', "ASYA_ON": "true"})
    assert load_settings(Example, to_env(s)) == s


def test_sidecar_settings_validate_ranges():
    with pytest.raises(ValueError, match="ASYA_CONCURRENCY"):
        load_settings(SidecarSettings, {"ASYA_ACTOR_NAME": "a", "ASYA_CONCURRENCY": "0"})
    with pytest.raises(ValueError, match="ASYA_RETRY_BACKOFF"):
        load_settings(RetryPolicy, {"ASYA_RETRY_BACKOFF": "linear"})
    with pytest.raises(ValueError, match="MAX_INTERVAL"):
        load_settings(RetryPolicy, {"ASYA_RETRY_INITIAL_INTERVAL": "10s", "ASYA_RETRY_MAX_INTERVAL": "1s"})
