"""Rendering and schema validation shared by the chart tests.

The charts are proven with the real tools: the pinned ``helm`` renders them, every core Kubernetes object
is checked against the strict OpenAPI schemas bundled in ``kubernetes-validate`` (unknown fields rejected),
and every KEDA object against the CRD schema of the pinned KEDA release (``make keda-crds``), converted to a
closed JSON Schema. Tools are found through the env the Makefile exports (``HELM``, ``CT``, ``KEDA_CRDS``),
falling back to the default tools cache.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "charts"
VALUES = REPO / "values"
TOOLS_CACHE = Path(os.environ.get("ASYA_TOOLS_CACHE", Path.home() / ".cache" / "asya-tools"))
KEDA_VERSION = os.environ.get("KEDA_VERSION", "v2.20.2")
PROMETHEUS_OPERATOR_VERSION = os.environ.get("PROMETHEUS_OPERATOR_VERSION", "v0.85.0")
KUBERNETES_VERSION = "1.34.0"


def tool(env: str, name: str) -> str | None:
    """Path of a pinned tool: ``$ENV``, else the tools cache, else ``None``."""
    candidates = [os.environ.get(env), str(TOOLS_CACHE / "bin" / name)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def keda_crd_dir() -> Path:
    """Directory holding KEDA's CRD YAMLs (filled by ``make keda-crds``)."""
    return Path(os.environ.get("KEDA_CRDS", TOOLS_CACHE / "keda-crds" / KEDA_VERSION))


def crd_dirs() -> list[Path]:
    """Directories of every CRD the tests validate against (KEDA, ServiceMonitor, Flux), from ``make crds``."""
    promop = Path(os.environ.get("PROMOP_CRDS", TOOLS_CACHE / "prometheus-operator-crds" / PROMETHEUS_OPERATOR_VERSION))
    flux = Path(os.environ.get("FLUX_CRDS", TOOLS_CACHE / "flux-crds" / "helm-v1.4.0"))
    return [keda_crd_dir(), promop, flux]


class HelmError(RuntimeError):
    """``helm`` exited non-zero; the message holds its stderr."""


def helm(*args: str, cwd: Path = REPO) -> str:
    """Runs the pinned helm and returns stdout.

    Raises:
        HelmError: helm failed.
    """
    binary = tool("HELM", "helm")
    if binary is None:
        raise FileNotFoundError("helm not found: run `make tools-helm`")
    proc = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip() or proc.stdout.strip())
    return proc.stdout


def render_text(chart: Path, values: Iterable[Path] = (), release: str = "test", sets: Iterable[str] = ()) -> str:
    """``helm template`` of ``chart`` with ``-f`` files (in order) and ``--set`` overrides."""
    args = ["template", release, str(chart), "--namespace", "asya", "--kube-version", KUBERNETES_VERSION]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return helm(*args)


def render(chart: Path, values: Iterable[Path] = (), release: str = "test", sets: Iterable[str] = ()) -> list[dict]:
    """Rendered objects of ``chart`` (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(render_text(chart, values, release, sets)) if doc]


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    """Objects of one kind."""
    return [obj for obj in objects if obj.get("kind") == kind]


def one(objects: list[dict], kind: str) -> dict:
    """The single object of ``kind``; fails when there are zero or several."""
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(deployment: dict, name: str) -> dict:
    """A container of a Deployment by name."""
    spec = deployment["spec"]["template"]["spec"]
    for item in spec.get("containers", []) + spec.get("initContainers", []):
        if item["name"] == name:
            return item
    raise KeyError(f"no container {name!r} in {deployment['metadata']['name']}")


def env_of(item: dict) -> dict[str, dict]:
    """Env of a container as name -> EnvVar."""
    return {var["name"]: var for var in item.get("env", [])}


# --- schema validation -------------------------------------------------------------------------------

CORE_API_GROUPS = {"v1", "apps/v1", "policy/v1", "batch/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1",
                   "autoscaling/v2"}


def validate_core(obj: dict) -> None:
    """Validates a built-in Kubernetes object against the strict schema of ``KUBERNETES_VERSION``.

    Raises:
        kubernetes_validate.ValidationError: the object does not match (unknown fields included).
    """
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def _closed(schema: Any) -> Any:
    """Converts a CRD openAPIV3Schema into a JSON Schema that rejects unknown fields."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _closed(value) for key, value in schema.items() if not key.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema \
            and not preserve:
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def crd_validators() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """``(apiVersion, kind) -> validator`` for every CRD of the pinned KEDA and Prometheus Operator releases."""
    validators = {}
    for path in sorted(p for d in crd_dirs() for p in d.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _closed(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            schema.setdefault("required", [])
            schema["required"] = sorted(set(schema["required"]) | {"apiVersion", "kind", "metadata", "spec"})
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def validate_custom(obj: dict) -> None:
    """Validates a custom resource (KEDA, ServiceMonitor) against its CRD schema.

    Raises:
        jsonschema.ValidationError: the object does not match (unknown fields included).
        KeyError: no pinned CRD defines this apiVersion and kind.
    """
    validator = crd_validators()[(obj["apiVersion"], obj["kind"])]
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        raise jsonschema.ValidationError(
            "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
        )


def validate_object(obj: dict) -> str:
    """Validates one rendered object with the right schema; returns which schema was used.

    Raises:
        AssertionError: no schema is known for the object's kind.
    """
    api_version = obj["apiVersion"]
    if api_version.startswith("keda.sh/"):
        validate_custom(obj)
        return f"keda {KEDA_VERSION}"
    if api_version.split("/")[0].endswith(".toolkit.fluxcd.io"):
        validate_custom(obj)
        return "flux"
    if api_version.startswith("monitoring.coreos.com/"):
        validate_custom(obj)
        return f"prometheus-operator {PROMETHEUS_OPERATOR_VERSION}"
    if api_version in CORE_API_GROUPS:
        validate_core(obj)
        return f"kubernetes {KUBERNETES_VERSION}"
    raise AssertionError(f"no schema to validate {api_version} {obj['kind']}")


def which(name: str) -> str | None:
    """``shutil.which`` (kept here so tests import one module)."""
    return shutil.which(name)
