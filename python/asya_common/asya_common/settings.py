"""Typed settings parsed once from ``ASYA_*`` environment variables.

Every component (runtime, sidecar, crew, controller, CLI) describes its configuration as a frozen
dataclass and calls :func:`load_settings` once at start-up. This is the only module in the project
that reads ``os.environ``; everything else receives a settings object.

It is deliberately standard-library only: the runtime runs inside the user's image next to the
user's own pinned libraries, so it cannot depend on pydantic. One mechanism serves every component
so that env names, defaults and error messages look the same everywhere.

Example::

    @dataclass(frozen=True)
    class RuntimeSettings:
        handler: str = env_field("ASYA_HANDLER", required=True)
        handler_args: dict = env_field("ASYA_HANDLER_ARGS", default_factory=dict)

    settings = load_settings(RuntimeSettings)
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from typing import Any, Callable, Mapping, TypeVar

T = TypeVar("T")

_MISSING = dataclasses.MISSING
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Duration(float):
    """A number of seconds; env values may be written ``30``, ``1.5s``, ``500ms``, ``2m`` or ``1h``."""


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_DURATION_SECONDS = 365 * 24 * 3600.0


def parse_duration(raw: str | float | int) -> float:
    """Parses ``30``, ``1.5s``, ``500ms``, ``2m``, ``1h`` (or a number) into seconds.

    Raises:
        ValueError: The text is not a non-negative duration.
    """
    if isinstance(raw, (int, float)):
        seconds = float(raw)
    else:
        text = raw.strip().lower()
        unit = next((u for u in ("ms", "s", "m", "h") if text.endswith(u)), "")
        number = text[: len(text) - len(unit)] if unit else text
        try:
            seconds = float(number) * _DURATION_UNITS.get(unit, 1.0)
        except ValueError:
            raise ValueError(f"{raw!r} is not a duration (examples: 30, 1.5s, 500ms, 2m, 1h)") from None
    if seconds < 0:
        raise ValueError(f"{raw!r} is negative")
    if not seconds <= MAX_DURATION_SECONDS:  # also refuses nan and inf
        raise ValueError(f"{raw!r} is not a sensible duration (at most {MAX_DURATION_SECONDS:.0f}s, one year)")
    return seconds


class SettingsError(ValueError):
    """Raised when an ``ASYA_*`` variable is missing or cannot be parsed; the message names it."""


def env_field(
    env: str,
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | Any = _MISSING,
    required: bool = False,
    help: str = "",
) -> Any:
    """Declares a dataclass field filled from the environment variable ``env``.

    Args:
        env: Name of the environment variable, normally ``ASYA_...``.
        default: Value used when the variable is unset.
        default_factory: Factory for mutable defaults (dict, list).
        required: When true, an unset or empty variable is an error.
        help: One line describing the setting (used in docs and error messages).
    """
    metadata = {"env": env, "required": required, "help": help}
    if required:
        return dataclasses.field(default=None, metadata=metadata)
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _parse(raw: str, annotation: Any, env: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        non_none = [a for a in args if a is not type(None)]
        if raw == "" and type(None) in args:
            return None
        return _parse(raw, non_none[0], env)
    target = origin or annotation
    try:
        if target is bool:
            lowered = raw.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(f"expected one of {sorted(_TRUE | _FALSE - {''})}")
        if target is Duration:
            return Duration(parse_duration(raw))
        if target is int:
            return int(raw)
        if target is float:
            return float(raw)
        if target in (dict, list):
            value = json.loads(raw) if raw.strip() else target()
            if not isinstance(value, target):
                raise ValueError(f"expected a JSON {target.__name__}, got {type(value).__name__}")
            return value
        if target is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except (ValueError, json.JSONDecodeError) as exc:
        raise SettingsError(f"{env}={raw!r} is invalid: {exc}") from None


def load_settings(cls: type[T], environ: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Builds ``cls`` from the environment.

    Args:
        cls: A dataclass whose fields were declared with :func:`env_field`.
        environ: Mapping to read instead of ``os.environ`` (tests, ``asya dev``).
        **overrides: Field values that win over the environment.

    Returns:
        A fully parsed instance of ``cls``.

    Raises:
        SettingsError: A required variable is unset or a value does not parse.
    """
    source = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in overrides:
            values[field.name] = overrides[field.name]
            continue
        env = field.metadata.get("env")
        if env is None:
            continue
        raw = source.get(env)
        if raw is None or (raw == "" and field.metadata.get("required")):
            if field.metadata.get("required"):
                raise SettingsError(f"{env} is required but not set ({field.metadata.get('help') or field.name})")
            continue
        values[field.name] = _parse(raw, hints[field.name], env)
    return cls(**values)


def describe(cls: type) -> list[tuple[str, str, str]]:
    """Lists ``(env name, default, help)`` for every field of a settings class (for docs)."""
    rows = []
    for field in dataclasses.fields(cls):
        if "env" not in field.metadata:
            continue
        if field.default is not _MISSING:
            default = repr(field.default)
        elif field.default_factory is not _MISSING:  # type: ignore[misc]
            default = repr(field.default_factory())  # type: ignore[misc]
        else:
            default = "(required)"
        if field.metadata.get("required"):
            default = "(required)"
        rows.append((field.metadata["env"], default, field.metadata.get("help", "")))
    return rows


def to_env(settings: Any) -> dict[str, str]:
    """The inverse of :func:`load_settings`: ``{ASYA_...: text}`` for every field of ``settings``.

    Used to hand a parent's parsed settings to child processes (``asya dev``).
    """
    env = {}
    for field in dataclasses.fields(settings):
        name = field.metadata.get("env")
        if name is None:
            continue
        value = getattr(settings, field.name)
        if isinstance(value, bool):
            env[name] = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            env[name] = json.dumps(value)
        elif isinstance(value, tuple):
            env[name] = ",".join(value)
        elif value is not None:
            env[name] = str(value)
    return env
