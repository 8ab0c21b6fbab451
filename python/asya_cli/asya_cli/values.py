"""Actor values files: the same YAML a team passes to ``helm install charts/asya-actor -f``.

``asya dev`` reads them to start local sidecar + runtime pairs. Files are merged over the chart's own
``values.yaml`` and validated against its ``values.schema.json`` (when the chart is present in the
checkout), exactly as Helm would, so a typo fails here the same way it fails ``helm template``.
The env each container gets is derived here once (see docs/configuration.md).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from asya_cli import names

from asya_common.envelope import actor_name_problem

CHART_DIR = Path(__file__).resolve().parent / "chart"  # the chart's values.yaml + schema, shipped as package data


class ValuesError(ValueError):
    """A values file is unreadable or invalid; the message names the file and the key."""


@dataclass(frozen=True)
class ActorSpec:
    """One actor as ``asya dev`` runs it."""

    name: str
    source: Path
    runtime_env: dict[str, str]
    sidecar_env: dict[str, str]
    # env names whose value is only the chart's default: the environment of `asya dev` may override them
    defaulted: frozenset[str] = frozenset()


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merges ``override`` into a copy of ``base`` the way Helm merges ``-f`` files (maps merge, rest replaces)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValuesError(f"{path}: cannot read values file: {exc}") from None
    if not isinstance(data, dict):
        raise ValuesError(f"{path}: a values file must be a YAML mapping")
    return data


def _validate_against_chart(path: Path, values: dict[str, Any], chart_dir: Path) -> dict[str, Any]:
    defaults_file, schema_file = chart_dir / "values.yaml", chart_dir / "values.schema.json"
    if not defaults_file.exists() or not schema_file.exists():
        raise ValuesError(f"{path}: the actor chart's values.yaml / values.schema.json are missing from {chart_dir} "
                          "(a broken asya-cli install; reinstall it)")
    merged = deep_merge(_load_yaml(defaults_file), values)
    import jsonschema

    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(merged), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        if where == "name" and names.problem(merged.get("name")):  # say what is allowed, suggest the fix
            raise ValuesError(f"{path}: name: {names.problem(merged.get('name'))}")
        raise ValuesError(f"{path}: {where}: {first.message}")
    return merged


def _env_list(value: Any, path: Path) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        out = {}
        for item in value:
            if not isinstance(item, dict) or "name" not in item:
                raise ValuesError(f"{path}: env entries must be {{name, value}} mappings")
            if "value" in item:
                out[str(item["name"])] = str(item["value"])
        return out
    raise ValuesError(f"{path}: env must be a mapping or a list of {{name, value}}")


def tracing_env(tracing: dict[str, Any], service_name: str) -> dict[str, str]:
    """The sidecar's ``OTEL_*`` env from the chart's ``tracing`` values (the same as the chart renders)."""
    if not tracing.get("enabled"):
        return {}
    if not tracing.get("endpoint"):
        raise ValuesError("tracing.endpoint is required when tracing.enabled")
    out = {"OTEL_EXPORTER_OTLP_ENDPOINT": str(tracing["endpoint"]),
           "OTEL_SERVICE_NAME": str(tracing.get("serviceName") or service_name),
           "OTEL_TRACES_SAMPLER": str(tracing.get("sampler") or "parentbased_always_on"),
           "OTEL_BSP_MAX_QUEUE_SIZE": str(tracing.get("maxQueueSize") or 2048)}
    if str(tracing.get("samplerArg", "")) != "":
        out["OTEL_TRACES_SAMPLER_ARG"] = str(tracing["samplerArg"])
    return out


def load_actor(path: str | Path, layers: list[Path] = (), chart_dir: Path = CHART_DIR) -> ActorSpec:
    """Reads one actor values file (optionally over shared layers, like several ``-f`` files).

    Raises:
        ValuesError: Missing ``name``/``handler``, a typo'd key, or a value of the wrong type.
    """
    path = Path(path).resolve()
    values: dict[str, Any] = {}
    for layer in [*layers, path]:
        values = deep_merge(values, _load_yaml(Path(layer)))
    problem = actor_name_problem(values["name"]) if isinstance(values.get("name"), str) and values["name"] else None
    if problem:  # before the schema, whose message for a reserved name would not say why
        raise ValuesError(f"{path}: name: {problem}; choose another actor name")
    user_values = values
    values = _validate_against_chart(path, values, chart_dir)
    for key in ("name", "handler"):
        if not isinstance(values.get(key), str) or not values[key]:
            raise ValuesError(f"{path}: '{key}' is required")
    runtime_env, sidecar_env = _container_env(values, path)
    defaulted = frozenset(k for k, paths in ENV_SOURCES.items()  # no values file sets them: the chart's default
                          if not any(_has_path(user_values, p) for p in paths))
    return ActorSpec(name=values["name"], source=path, runtime_env=runtime_env, sidecar_env=sidecar_env,
                     defaulted=defaulted)


# Which values keys each env variable comes from (as the chart's deployment.yaml derives it). A variable none of
# whose keys a values file sets carries the chart's default, and the environment of `asya dev` may override it.
ENV_SOURCES: dict[str, tuple[str, ...]] = {
    "ASYA_HANDLER_MODE": ("handlerMode",), "ASYA_HANDLER_ARGS": ("handlerArgs",), "ASYA_CONCURRENCY": ("concurrency",),
    "ASYA_PREFETCH": ("prefetch",),
    "ASYA_LOG_LEVEL": ("logLevel",), "ASYA_ACTOR_TIMEOUT": ("resiliency.actorTimeout",),
    "ASYA_RETRY_MAX_ATTEMPTS": ("resiliency.policies.default.maxAttempts",),
    "ASYA_RETRY_BACKOFF": ("resiliency.policies.default.backoff",),
    "ASYA_RETRY_INITIAL_INTERVAL": ("resiliency.policies.default.initialInterval",),
    "ASYA_RETRY_MAX_INTERVAL": ("resiliency.policies.default.maxInterval",),
    "ASYA_RETRY_NON_RETRYABLE_ERRORS": ("resiliency.policies.default.nonRetryableErrors",),
    "ASYA_DLQ_MAX_RECEIVE_COUNT": ("resiliency.deadLetter.maxReceiveCount",),
    "ASYA_LEASE_SECONDS": ("transport.leaseSeconds",),
    "ASYA_SHUTDOWN_GRACE": ("sidecar.shutdownGrace",),  # its default follows actorTimeout, as in the chart
    "ASYA_RUNTIME_CONNECT_TIMEOUT": ("sidecar.runtimeConnectTimeout",),
}


def _has_path(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _container_env(values: dict[str, Any], path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The env of the runtime and sidecar containers, as the chart's deployment.yaml renders it.

    Keys the chart derives from the broker (``transport.*`` apart from ``leaseSeconds``), the socket path
    and the metrics port are the dev mesh's own (docs/configuration.md, "asya dev").
    """
    name = values["name"]
    resiliency = values.get("resiliency") or {}
    policy = ((resiliency.get("policies") or {}).get("default")) or {}
    concurrency = str(values.get("concurrency", 1))
    runtime_env = {
        **_env_list(values.get("env") or {}, path),
        "ASYA_ACTOR_NAME": name,
        "ASYA_HANDLER": values["handler"],
        "ASYA_HANDLER_MODE": values.get("handlerMode") or "payload",
        "ASYA_HANDLER_ARGS": json.dumps(values.get("handlerArgs") or {}, sort_keys=True, separators=(",", ":")),  # = toJson
        "ASYA_CONCURRENCY": concurrency,
        "ASYA_LOG_LEVEL": str(values.get("logLevel") or "INFO"),
    }
    sidecar = values.get("sidecar") or {}
    sidecar_env = {"ASYA_ACTOR_NAME": name, "ASYA_CONCURRENCY": concurrency,
                   "ASYA_PREFETCH": str(values.get("prefetch", 0)), "ASYA_LOG_LEVEL": runtime_env["ASYA_LOG_LEVEL"]}
    optional = {
        "ASYA_ACTOR_TIMEOUT": resiliency.get("actorTimeout"),
        "ASYA_RETRY_MAX_ATTEMPTS": policy.get("maxAttempts"),
        "ASYA_RETRY_BACKOFF": policy.get("backoff"),
        "ASYA_RETRY_INITIAL_INTERVAL": policy.get("initialInterval"),
        "ASYA_RETRY_MAX_INTERVAL": policy.get("maxInterval"),
        "ASYA_DLQ_MAX_RECEIVE_COUNT": (resiliency.get("deadLetter") or {}).get("maxReceiveCount"),
        "ASYA_RETRY_NON_RETRYABLE_ERRORS": ",".join(policy.get("nonRetryableErrors") or []),
        "ASYA_LEASE_SECONDS": (values.get("transport") or {}).get("leaseSeconds"),
        "ASYA_SHUTDOWN_GRACE": sidecar.get("shutdownGrace") or resiliency.get("actorTimeout"),
        "ASYA_RUNTIME_CONNECT_TIMEOUT": sidecar.get("runtimeConnectTimeout"),
    }
    sidecar_env.update({k: str(v) for k, v in optional.items() if v is not None})
    sidecar_env.update(tracing_env(values.get("tracing") or {}, name))
    return runtime_env, sidecar_env
