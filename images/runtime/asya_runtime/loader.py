"""Imports the user's handler named by ``ASYA_HANDLER`` and instantiates a class handler once.

``module.function`` or ``module.Class.method`` (module names may be dotted). A problem with the
configuration raises :class:`HandlerConfigError` (exit code 2); the user's code failing while it is
imported or while ``__init__`` runs raises :class:`HandlerInitError` (exit code 3). Both messages are
one line naming the problem.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable


class HandlerConfigError(Exception):
    """ASYA_HANDLER / ASYA_HANDLER_ARGS do not name a usable handler."""


class HandlerInitError(Exception):
    """The handler's module raised while being imported, or its class ``__init__`` raised."""


@dataclass(frozen=True)
class LoadedHandler:
    """A ready-to-call handler."""

    name: str
    function: Callable[[Any], Any]
    is_async: bool


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _import(name: str) -> Any:
    """Imports ``name``; returns None when that very module does not exist."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise HandlerInitError(f"handler module {name!r} failed to import ({_describe(exc)})") from exc
    except Exception as exc:  # the user's module raised at import time
        raise HandlerInitError(f"handler module {name!r} failed to import ({_describe(exc)})") from exc


def _import_module(parts: list[str]) -> tuple[Any, list[str]]:
    """Imports the longest module prefix of ``parts`` (leaving at least one name); returns it and the rest."""
    try:
        module = importlib.import_module(parts[0])
    except ModuleNotFoundError as exc:
        if exc.name == parts[0]:
            raise HandlerConfigError(f"cannot import handler module {parts[0]!r} ({_describe(exc)})") from exc
        raise HandlerInitError(f"handler module {parts[0]!r} failed to import ({_describe(exc)})") from exc
    except Exception as exc:  # the user's module raised at import time
        raise HandlerInitError(f"handler module {parts[0]!r} failed to import ({_describe(exc)})") from exc
    size = 1
    while size < len(parts) - 1 and hasattr(module, "__path__"):  # a package: the next name may be a submodule
        submodule = _import(".".join(parts[: size + 1]))
        if submodule is None:
            break
        module, size = submodule, size + 1
    return module, parts[size:]


def _instantiate(cls: type, args: dict[str, Any], spec: str) -> Any:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind(**args)
        except TypeError as exc:
            accepted = ", ".join(p for p in signature.parameters) or "none"
            raise HandlerConfigError(
                f"ASYA_HANDLER_ARGS do not fit {cls.__module__}.{cls.__qualname__}.__init__ for {spec!r}: "
                f"{exc} (accepted arguments: {accepted})"
            ) from None
    try:
        return cls(**args)
    except Exception as exc:
        qualified = f"{cls.__module__}.{cls.__qualname__}"
        raise HandlerInitError(f"{qualified}(**ASYA_HANDLER_ARGS) raised {_describe(exc)}") from exc


def _is_async(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        return True
    call = getattr(function, "__call__", None)  # callable objects
    return not inspect.isroutine(function) and (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call))


def load_handler(spec: str, args: dict[str, Any] | None = None) -> LoadedHandler:
    """Imports ``spec`` and returns the callable the runtime serves.

    Args:
        spec: ``module.function`` or ``module.Class.method``.
        args: Keyword arguments for a class handler's ``__init__`` (over its defaults).

    Raises:
        HandlerConfigError: Bad name, missing module/attribute, not callable, arguments that do not fit.
        HandlerInitError: The module raised on import or the class ``__init__`` raised.
    """
    args = dict(args or {})
    parts = spec.strip().split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise HandlerConfigError(
            f"ASYA_HANDLER={spec!r} is invalid: expected 'module.function' or 'module.Class.method'"
        )
    module, names = _import_module(parts)
    owner: Any = module
    owner_name = module.__name__
    for name in names[:-1]:
        if not hasattr(owner, name):
            raise HandlerConfigError(
                f"handler module {owner_name!r} has no attribute {name!r} (ASYA_HANDLER={spec!r})"
            )
        owner = getattr(owner, name)
        owner_name = f"{owner_name}.{name}"
    if len(names) > 2 or (len(names) == 2 and not inspect.isclass(owner)):
        raise HandlerConfigError(
            f"ASYA_HANDLER={spec!r} is invalid: {owner_name!r} is not a class "
            "(expected 'module.function' or 'module.Class.method')"
        )
    attribute = names[-1]
    if not hasattr(owner, attribute):
        what = "class" if inspect.isclass(owner) else "handler module"
        raise HandlerConfigError(f"{what} {owner_name!r} has no attribute {attribute!r} (ASYA_HANDLER={spec!r})")
    target = getattr(owner, attribute)
    if not callable(target):
        raise HandlerConfigError(f"ASYA_HANDLER={spec!r} is not callable (it is a {type(target).__name__})")
    if inspect.isclass(target):
        raise HandlerConfigError(
            f"ASYA_HANDLER={spec!r} names a class; name one of its methods: '{spec}.<method>'"
        )
    if inspect.isclass(owner):
        instance = _instantiate(owner, args, spec)
        function = getattr(instance, attribute)
    else:
        if args:
            raise HandlerConfigError(
                f"ASYA_HANDLER_ARGS is set ({sorted(args)}) but {spec!r} is a function, not a class method"
            )
        function = target
    return LoadedHandler(name=spec.strip(), function=function, is_async=_is_async(function))
